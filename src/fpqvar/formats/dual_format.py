"""Dual formats (DFQ, paper Sec. IV-A): one format for x <= 0, another for x > 0, each with its own scale."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from ._table import TabulatedFormat
from .float_format import FP4_E1M2, FP4_E2M1, FP6_E2M3, FloatFormat
from .int_format import INT6_ASYM, IntFormat


@dataclass(frozen=True)
class DualFormat(TabulatedFormat):
    """Negative half of ``negative``'s grid joined with the positive half of ``positive``'s grid.

    Both formats have the same bit width and put the sign in the top bit, so a code whose top
    bit is set decodes with ``negative`` and any other code with ``positive``: the number of
    levels (and the quantizer's LUT size) stays that of one format.
    """

    name: str
    negative: FloatFormat | IntFormat
    positive: FloatFormat | IntFormat

    def __post_init__(self) -> None:
        if self.negative.bits != self.positive.bits:
            raise ValueError(
                f"a dual format needs two formats of one width; {self.negative} has "
                f"{self.negative.bits} bits and {self.positive} has {self.positive.bits}"
            )

    @property
    def bits(self) -> int:
        return self.positive.bits

    @property
    def max_value(self) -> float:
        """Largest positive value: the positive scale is max(x) / max_value."""
        return self.positive.max_value

    @property
    def min_value(self) -> float:
        """Most negative value: the negative scale is max(-x) / -min_value."""
        return self.negative.min_value

    @cached_property
    def values_by_code(self) -> torch.Tensor:
        codes = torch.arange(2**self.bits)
        negative_code = codes >= 2 ** (self.bits - 1)
        return torch.where(negative_code, self.negative.values_by_code, self.positive.values_by_code)

    @property
    def negative_grid(self) -> torch.Tensor:
        return self.grid[self.grid <= 0]

    @property
    def positive_grid(self) -> torch.Tensor:
        return self.grid[self.grid >= 0]


def half_name(fmt: FloatFormat | IntFormat) -> str:
    """How a dual format's name calls one of its halves: e1m2, e2m1b1 (float formats without their width),
    int6 (two's complement, the full range: the FP6 DFQ's negatives), int6sym (symmetric)."""
    if isinstance(fmt, IntFormat):
        return f"int{fmt.bits}" + ("sym" if fmt.symmetric else "")
    return fmt.name.split("_", 1)[1]


def dual_name(negative: FloatFormat | IntFormat, positive: FloatFormat | IntFormat) -> str:
    """The canonical name ``dfq_<negative>neg_<positive>pos`` that ``get_format`` parses back."""
    return f"dfq_{half_name(negative)}neg_{half_name(positive)}pos"


# The paper's FP4 DFQ (Alg. 2's result): E1M2 negatives, E2M1 positives.
DFQ_FP4 = DualFormat("dfq_e1m2neg_e2m1pos", FP4_E1M2, FP4_E2M1)
# The released code's FP6 DFQ (not in the paper): INT6 negatives -32..0, E2M3 positives.
DFQ_FP6 = DualFormat("dfq_int6neg_e2m3pos", INT6_ASYM, FP6_E2M3)
# AFPQ (two scales, one format), the paper's comparison point in Fig. 3 and Fig. 5a.
AFPQ_FP4 = DualFormat("afpq_e2m1", FP4_E2M1, FP4_E2M1)
