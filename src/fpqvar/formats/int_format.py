"""Two's-complement integer formats."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from ._table import TabulatedFormat


@dataclass(frozen=True)
class IntFormat(TabulatedFormat):
    """INT-n in two's complement.

    ``symmetric=True`` is the grid of symmetric absmax quantization: -(2**(n-1) - 1) .. 2**(n-1) - 1,
    2**n - 1 levels (the code -2**(n-1) is never produced; this is the released code's INT4, 15 levels).
    ``symmetric=False`` is the full range -2**(n-1) .. 2**(n-1) - 1, used by asymmetric (zero-point)
    quantization and as the negative half of the FP6 dual format.
    """

    name: str
    bits: int
    symmetric: bool = True

    @property
    def max_value(self) -> float:
        return float(2 ** (self.bits - 1) - 1)

    @property
    def min_value(self) -> float:
        return -self.max_value if self.symmetric else -float(2 ** (self.bits - 1))

    @cached_property
    def values_by_code(self) -> torch.Tensor:
        codes = torch.arange(2**self.bits, dtype=torch.float64)
        return torch.where(codes >= 2 ** (self.bits - 1), codes - 2**self.bits, codes)



INT4 = IntFormat("int4", 4)
INT6 = IntFormat("int6", 6)
INT8 = IntFormat("int8", 8)
INT4_ASYM = IntFormat("int4_asym", 4, symmetric=False)
INT6_ASYM = IntFormat("int6_asym", 6, symmetric=False)
INT8_ASYM = IntFormat("int8_asym", 8, symmetric=False)
