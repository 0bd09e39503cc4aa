"""Code tables shared by every format: decode is an index, encode a sorted look-up.

Tables have at most 256 entries, so they are built once in plain Python and cached by the formats.
"""

from __future__ import annotations

import math

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


def encode_by_table(values: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor], name: str) -> torch.Tensor:
    """Bit code of each value; every value must lie exactly on the grid."""
    grid, codes = table
    v = torch.as_tensor(values).to(torch.float64)
    flat = v.reshape(-1)
    idx = torch.searchsorted(grid, flat).clamp(max=grid.numel() - 1)
    hit = grid[idx] == flat
    if not bool(hit.all()):
        bad = flat[~hit][:5].tolist()
        raise ValueError(
            f"values {bad} are not on the grid of {name}; round them first "
            "(fpqvar.quant.round_to_format) or use fpqvar.quant.quantize"
        )
    return codes[idx].reshape(v.shape)


def decode_by_table(codes: torch.Tensor, values_by_code: torch.Tensor, name: str) -> torch.Tensor:
    """Value of each bit code (NaN or Inf where the format reserves the code)."""
    c = torch.as_tensor(codes).long()
    if c.numel() and (int(c.min()) < 0 or int(c.max()) >= values_by_code.numel()):
        raise ValueError(f"codes of {name} lie in [0, {values_by_code.numel() - 1}]; got {int(c.min())}..{int(c.max())}")
    return values_by_code[c]
