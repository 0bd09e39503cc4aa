"""Grid, encode and decode written once, over a value table: every format kind only says what value each bit
code stands for (``values_by_code``) and its range (``min_value``, ``max_value``).

Tables have at most 256 entries, so they are built once in plain Python and cached by the formats.
"""

from __future__ import annotations

import math
from functools import cached_property

import torch


def sorted_code_table(values_by_code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted distinct finite values, the smallest code of each): +0 wins over -0."""
    code_of: dict[float, int] = {}
    for code, value in enumerate(values_by_code.tolist()):
        if math.isfinite(value):
            code_of.setdefault(value + 0.0, code)  # -0.0 and 0.0 are one key
    values = sorted(code_of)
    return (
        torch.tensor(values, dtype=torch.float64),
        torch.tensor([code_of[v] for v in values], dtype=torch.int64),
    )


class TabulatedFormat:
    """Mixin of the format dataclasses: ``grid``, ``encode`` and ``decode`` from the value table.

    The grid is the distinct finite values in [min_value, max_value] (symmetric INT leaves out -2**(n-1),
    which its absmax scale never produces); encode gives each grid value its smallest code (+0 for zero).
    """

    name: str
    values_by_code: torch.Tensor  # a cached property of each format: the value of every code 0 .. 2**bits - 1
    min_value: float
    max_value: float

    @cached_property
    def _code_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        grid, codes = sorted_code_table(self.values_by_code)
        keep = (grid >= self.min_value) & (grid <= self.max_value)
        return grid[keep], codes[keep]

    @property
    def grid(self) -> torch.Tensor:
        """Sorted distinct values a quantizer can produce (float64)."""
        return self._code_table[0]

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        """Bit code of each value (on the values' device); every value must lie exactly on the grid."""
        v = torch.as_tensor(values).to(torch.float64)
        grid, codes = (t.to(v.device) for t in self._code_table)
        flat = v.reshape(-1)
        idx = torch.searchsorted(grid, flat).clamp(max=grid.numel() - 1)
        hit = grid[idx] == flat
        if not bool(hit.all()):
            bad = flat[~hit][:5].tolist()
            raise ValueError(
                f"values {bad} are not on the grid of {self.name}; round them first "
                "(fpqvar.quant.round_to_format) or use fpqvar.quant.quantize"
            )
        return codes[idx].reshape(v.shape)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Value of each bit code, float64 on the codes' device (NaN or Inf where the format reserves the code)."""
        c = torch.as_tensor(codes).long()
        table = self.values_by_code.to(c.device)
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= table.numel()):
            raise ValueError(f"codes of {self.name} lie in [0, {table.numel() - 1}]; got {int(c.min())}..{int(c.max())}")
        return table[c]

    def __str__(self) -> str:
        return self.name
