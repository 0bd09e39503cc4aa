"""The FP4 quantizer of the paper's Fig. 7d/7g in fixed point (rtl/src/fp4_scale_pass.v, fp4_quantizer.v), bit-exact.

Inputs are signed integers (the FHT unit's output, or any fixed-point activation), one group per row.

Scale pass: m = max|x| over the group (DFQ: m- = max -x over x <= 0 with R = 7, m+ = max x over x > 0 with
R = 12; E2M1: R = 12). The reciprocal comes from a table, not a divider: m = 2**e f with f in [1, 2), f rounded
half up to ``index_bits`` fraction bits (index i in 0 .. 2**index_bits), and the table entry is
round(R 2**(P + index_bits) / (2**index_bits + i)) with P = index_bits + 5 fraction bits.
Encode pass: t = floor((x r + 2**(P+e-1)) / 2**(P+e)), i.e. round(R x / m) with ties toward +inf, up to the
table's relative error; then the code table of `fp4_encoder`. The dequantized value is decode(code) m 2 / R.

Three things make this differ from a direct round-to-nearest of x / s (`mismatch_report` measures how often):
rounding twice (x to the integer t, then t to the grid), the half-up tie rule at t, and the table reciprocal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from ..formats import DFQ_FP4, FP4_E2M1
from ..quant import PerGroup, quantize
from .fp4_encoder import E1M2_RANGE, E2M1_RANGE, encode_scaled

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


def scale_pass(x: torch.Tensor, dual: bool = False, index_bits: int = RECIPROCAL_INDEX_BITS) -> dict[str, GroupScale]:
    """What fp4_scale_pass outputs for int64 groups along the last dim: {"positive": ...} for E2M1 (the absmax
    side), {"negative": ..., "positive": ...} for DFQ."""
    x = torch.as_tensor(x).to(torch.int64)
    if dual:
        return {
            "negative": _side_scale((-x).clamp(min=0).amax(-1, keepdim=True), E1M2_RANGE, index_bits),
            "positive": _side_scale(x.clamp(min=0).amax(-1, keepdim=True), E2M1_RANGE, index_bits),
        }
    return {"positive": _side_scale(x.abs().amax(-1, keepdim=True), E2M1_RANGE, index_bits)}


def _scaled(x: torch.Tensor, scale: GroupScale, index_bits: int) -> torch.Tensor:
    shift = reciprocal_fraction_bits(index_bits) + scale.exponent
    return (x * scale.reciprocal + (1 << (shift - 1))) >> shift  # floor division by 2**shift: round half up


def scale_to_table(x: torch.Tensor, dual: bool = False, index_bits: int = RECIPROCAL_INDEX_BITS) -> torch.Tensor:
    """The encode pass's integers t (the encoder's input) for int64 groups along the last dim."""
    x = torch.as_tensor(x).to(torch.int64)
    scales = scale_pass(x, dual, index_bits)
    t = _scaled(x, scales["positive"], index_bits)
    if dual:
        t = torch.where(x > 0, t, _scaled(x, scales["negative"], index_bits))
    return t


def quantize_group(x: torch.Tensor, dual: bool = False, tie: str = "even", index_bits: int = RECIPROCAL_INDEX_BITS):
    """Codes (int64, like x) and the group maxima (m, or (m-, m+) for DFQ) of int64 groups along the last dim."""
    x = torch.as_tensor(x).to(torch.int64)
    scales = scale_pass(x, dual, index_bits)
    t = scale_to_table(x, dual, index_bits)
    # every 5-bit input the encoder can see, saturation included, as one look-up tensor
    lookup = torch.tensor([encode_scaled(v, dual, tie) for v in range(-16, 16)], device=t.device)
    maxima = (scales["negative"].max, scales["positive"].max) if dual else (scales["positive"].max,)
    return lookup[t.clamp(-16, 15) + 16], maxima


def dequantize_group(codes: torch.Tensor, maxima: tuple[torch.Tensor, ...], dual: bool = False) -> torch.Tensor:
    if dual:
        values = DFQ_FP4.decode(codes)
        m_neg, m_pos = maxima
        return torch.where(values > 0, values * m_pos * 2 / E2M1_RANGE, values * m_neg * 2 / E1M2_RANGE)
    return FP4_E2M1.decode(codes) * maxima[0] * 2 / E2M1_RANGE


def mismatch_report(
    x: torch.Tensor, group_size: int = 128, dual: bool = False, tie: str = "even", index_bits: int = RECIPROCAL_INDEX_BITS,
) -> dict:
    """Compare the hardware's codes with the software quantizer's (round to nearest of x / s) on groups of x."""
    x = torch.as_tensor(x).to(torch.int64).reshape(-1, group_size)
    hw_codes, _ = quantize_group(x, dual, tie, index_bits)
    fmt = DFQ_FP4 if dual else FP4_E2M1
    sw = quantize(x.double(), fmt, PerGroup(group_size), tie)
    hw_values = fmt.decode(hw_codes)
    sw_values = fmt.decode(sw.codes.long())
    differ = hw_values != sw_values
    grid = fmt.grid
    steps = (torch.searchsorted(grid, hw_values[differ]) - torch.searchsorted(grid, sw_values[differ])).abs()
    return {
        "values": x.numel(),
        "mismatches": int(differ.sum()),
        "mismatch_rate": float(differ.double().mean()),
        "max_grid_steps_apart": int(steps.max()) if steps.numel() else 0,
        "examples": [(int(v), float(h), float(s)) for v, h, s in zip(x[differ][:5], hw_values[differ][:5], sw_values[differ][:5], strict=True)],
    }
