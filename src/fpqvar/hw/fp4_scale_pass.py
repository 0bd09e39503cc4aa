"""The FP4 quantizer's scale pass (paper Fig. 7d, top; rtl/src/fp4_scale_pass.v) in fixed point, bit-exact.

Per group of signed integers: m = max|x| (DFQ: m- = max -x over x <= 0 with R = 7, m+ = max x over x > 0 with
R = 12; E2M1: R = 12), its exponent e and a reciprocal from a table, not a divider: m = 2**e f with f in [1, 2),
f rounded half up to ``index_bits`` fraction bits (index i in 0 .. 2**index_bits), and the table entry is
round(R 2**(P + index_bits) / (2**index_bits + i)) with P = index_bits + 5 fraction bits. The encode pass
(fpqvar.hw.fp4_quantizer) uses them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .fp4_encoder import E1M2_RANGE, E2M1_RANGE

LATENCY = 2  # maxima; exponent and reciprocal look-up
RECIPROCAL_INDEX_BITS = 8
# fraction bits of the entries beyond the index's: 12 x 2**13 < 2**17, so x r fits one 27 x 18 DSP multiplier
RECIPROCAL_EXTRA_FRACTION_BITS = 5


def reciprocal_fraction_bits(index_bits: int = RECIPROCAL_INDEX_BITS) -> int:
    return index_bits + RECIPROCAL_EXTRA_FRACTION_BITS


def _check_index_bits(index_bits: int) -> None:
    # the RTL computes the table in 32-bit integers: 12 * 2**(2 * index_bits + 7) must stay below 2**31
    if not 2 <= index_bits <= 10:
        raise ValueError(f"index_bits must be in 2..10 (a 2**index_bits + 1 entry table), got {index_bits}")


@functools.cache
def reciprocal_table(range_: int, index_bits: int = RECIPROCAL_INDEX_BITS) -> tuple[int, ...]:
    """The 2**index_bits + 1 entries round(R 2**(P + index_bits) / (2**index_bits + i)) for R = ``range_``."""
    _check_index_bits(index_bits)
    shift = reciprocal_fraction_bits(index_bits) + index_bits
    return tuple((((range_ << (shift + 1)) // ((1 << index_bits) + i)) + 1) >> 1 for i in range((1 << index_bits) + 1))


def reciprocal_error_bound(range_: int, index_bits: int = RECIPROCAL_INDEX_BITS) -> float:
    """Largest |x r / 2**(P+e) - R x / m| over |x| <= m: the table's error in units of t."""
    _check_index_bits(index_bits)
    fraction_bits = reciprocal_fraction_bits(index_bits)
    # f rounded to index_bits fraction bits is within 2**-(index_bits+1) of f >= 1; the entry is rounded to an integer
    return range_ * 2.0 ** -(index_bits + 1) + 0.5 * 2.0 ** -(fraction_bits - 1)


@dataclass(frozen=True)
class GroupScale:
    """One side's scale-pass outputs, shaped (..., 1): the maximum m, its exponent e and the reciprocal r."""

    max: torch.Tensor
    exponent: torch.Tensor
    reciprocal: torch.Tensor


def _side_scale(m: torch.Tensor, range_: int, index_bits: int) -> GroupScale:
    exponent = torch.zeros_like(m)
    for b in range(1, 64):  # bit length - 1, as the RTL's leading-one search (0 for m = 0)
        exponent = torch.where(m >> b > 0, torch.full_like(m, b), exponent)
    fraction = ((m << (index_bits + 1)) >> exponent) - (2 << index_bits)  # index_bits + 1 bits below the leading 1
    index = (fraction + 1) >> 1  # rounded half up: 0 .. 2**index_bits
    table = torch.tensor(reciprocal_table(range_, index_bits), dtype=torch.int64, device=m.device)
    reciprocal = torch.where(m > 0, table[index.clamp(min=0)], torch.zeros_like(m))
    return GroupScale(m, exponent, reciprocal)


def scale_pass(x: torch.Tensor, *, dual: bool = False, index_bits: int = RECIPROCAL_INDEX_BITS) -> dict[str, GroupScale]:
    """What fp4_scale_pass outputs for int64 groups along the last dim: {"positive": ...} for E2M1 (the absmax
    side), {"negative": ..., "positive": ...} for DFQ."""
    x = torch.as_tensor(x).to(torch.int64)
    if dual:
        return {
            "negative": _side_scale((-x).clamp(min=0).amax(-1, keepdim=True), E1M2_RANGE, index_bits),
            "positive": _side_scale(x.clamp(min=0).amax(-1, keepdim=True), E2M1_RANGE, index_bits),
        }
    return {"positive": _side_scale(x.abs().amax(-1, keepdim=True), E2M1_RANGE, index_bits)}


