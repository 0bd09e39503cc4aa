"""Sign-exponent-mantissa formats below 16 bits (OCP MX rules, paper Eq. 2)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch

from ._table import TabulatedFormat

# Which codes a format gives up to non-finite values:
#   "none"     all codes are finite (OCP MX FP4/FP6, the paper's E1M2/E3M0);
#   "nan_only" only S.1111.111 is NaN, no Inf (OCP FP8 E4M3, "fn");
#   "ieee"     the all-ones exponent holds Inf (mantissa 0) and NaN (OCP FP8 E5M2).
Specials = Literal["none", "nan_only", "ieee"]


@dataclass(frozen=True)
class FloatFormat(TabulatedFormat):
    """An S1 E<e> M<m> floating-point format with exponent bias ``bias``.

    Codes are sign-magnitude bit strings ``s | exponent | mantissa``; exponent field 0 holds
    the subnormals ``2**(1 - bias) * M / 2**m`` (Eq. 2 of the paper).
    """

    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    specials: Specials = "none"

    @property
    def bits(self) -> int:
        return 1 + self.exponent_bits + self.mantissa_bits

    @property
    def min_exponent(self) -> int:
        """Unbiased exponent of the smallest normal binade; subnormals share its spacing."""
        return 1 - self.bias

    @property
    def max_exponent(self) -> int:
        """Unbiased exponent of the binade holding ``max_value``."""
        top_field = 2**self.exponent_bits - 1 - (self.specials == "ieee")
        return top_field - self.bias

    @property
    def max_value(self) -> float:
        top_mantissa = 2**self.mantissa_bits - 1 - (self.specials == "nan_only")
        return 2.0**self.max_exponent * (1 + top_mantissa / 2**self.mantissa_bits)

    @property
    def min_value(self) -> float:
        return -self.max_value

    @cached_property
    def values_by_code(self) -> torch.Tensor:
        """Value of every code 0 .. 2**bits - 1 (float64; NaN/Inf where reserved)."""
        e, m = self.exponent_bits, self.mantissa_bits
        values = []
        for code in range(2**self.bits):
            sign = -1.0 if code >> (e + m) else 1.0
            field, mant = (code >> m) & (2**e - 1), code & (2**m - 1)
            if field == 0:
                magnitude = 2.0 ** (1 - self.bias) * mant / 2**m
            else:
                magnitude = 2.0 ** (field - self.bias) * (1 + mant / 2**m)
            top = field == 2**e - 1
            if self.specials == "nan_only" and top and mant == 2**m - 1:
                magnitude = float("nan")
            elif self.specials == "ieee" and top:
                magnitude = float("inf") if mant == 0 else float("nan")
            values.append(sign * magnitude)
        return torch.tensor(values, dtype=torch.float64)



# FP4 (Table I of the paper). E1M2 uses bias 0 as in Table I (max 3.5). The released code's E1M2 list is the same
# grid halved (bias 1, max 1.75): absmax scaling makes the two identical whenever the scale is a normal float
# (scales are float32 by default: fp32/bf16 groups with absmax above ~4e-38); with a subnormal scale, e.g. the
# released float16 arithmetic below absmax ~2e-4, they differ, so the released grid is offered too.
FP4_E1M2 = FloatFormat("fp4_e1m2", 1, 2, bias=0)
FP4_E1M2_BIAS1 = FloatFormat("fp4_e1m2b1", 1, 2, bias=1)
FP4_E2M1 = FloatFormat("fp4_e2m1", 2, 1, bias=1)
FP4_E3M0 = FloatFormat("fp4_e3m0", 3, 0, bias=3)
# FP6 and FP8 as defined by the OCP Microscaling (MX) specification v1.0.
FP6_E2M3 = FloatFormat("fp6_e2m3", 2, 3, bias=1)
FP6_E3M2 = FloatFormat("fp6_e3m2", 3, 2, bias=3)
FP8_E4M3 = FloatFormat("fp8_e4m3", 4, 3, bias=7, specials="nan_only")
FP8_E5M2 = FloatFormat("fp8_e5m2", 5, 2, bias=15, specials="ieee")
