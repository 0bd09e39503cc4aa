"""The FP4 quantizer of the paper's Fig. 7d/7g in fixed point (rtl/src/fp4_quantizer.v), bit-exact.

Inputs are signed integers (the FHT unit's output, or any fixed-point activation), one group per row. The scale
pass (fpqvar.hw.fp4_scale_pass) gives each group's maximum m, exponent e and table reciprocal r.
Encode pass: t = floor((x r + 2**(P+e-1)) / 2**(P+e)), i.e. round(R x / m) with ties toward +inf, up to the
table's relative error; then the code table of `fp4_encoder`. The dequantized value is decode(code) m 2 / R.

Three things make this differ from a direct round-to-nearest of x / s (`mismatch_report` measures how often):
rounding twice (x to the integer t, then t to the grid), the half-up tie rule at t, and the table reciprocal.
"""

from __future__ import annotations

import torch

from ..formats import DFQ_FP4, FP4_E2M1
from ..quant import PerGroup, quantize
from . import fp4_encoder, fp4_scale_pass
from .fp4_encoder import E1M2_RANGE, E2M1_RANGE, encode_scaled
from .fp4_scale_pass import RECIPROCAL_INDEX_BITS, GroupScale, reciprocal_fraction_bits, scale_pass

LATENCY = fp4_scale_pass.LATENCY + 1 + fp4_encoder.LATENCY  # scale pass, scaling multiply, encoder


def _scaled(x: torch.Tensor, scale: GroupScale, index_bits: int) -> torch.Tensor:
    shift = reciprocal_fraction_bits(index_bits) + scale.exponent
    return (x * scale.reciprocal + (1 << (shift - 1))) >> shift  # floor division by 2**shift: round half up


def scale_to_table(x: torch.Tensor, *, dual: bool = False, index_bits: int = RECIPROCAL_INDEX_BITS) -> torch.Tensor:
    """The encode pass's integers t (the encoder's input) for int64 groups along the last dim."""
    x = torch.as_tensor(x).to(torch.int64)
    scales = scale_pass(x, dual=dual, index_bits=index_bits)
    t = _scaled(x, scales["positive"], index_bits)
    if dual:
        t = torch.where(x > 0, t, _scaled(x, scales["negative"], index_bits))
    return t


def quantize_group(x: torch.Tensor, *, dual: bool = False, tie: str = "even", index_bits: int = RECIPROCAL_INDEX_BITS):
    """Codes (int64, like x) and the group maxima (m, or (m-, m+) for DFQ) of int64 groups along the last dim."""
    x = torch.as_tensor(x).to(torch.int64)
    scales = scale_pass(x, dual=dual, index_bits=index_bits)
    t = scale_to_table(x, dual=dual, index_bits=index_bits)
    # every 5-bit input the encoder can see, saturation included, as one look-up tensor
    lookup = torch.tensor([encode_scaled(v, dual=dual, tie=tie) for v in range(-16, 16)], device=t.device)
    maxima = (scales["negative"].max, scales["positive"].max) if dual else (scales["positive"].max,)
    return lookup[t.clamp(-16, 15) + 16], maxima


def dequantize_group(codes: torch.Tensor, maxima: tuple[torch.Tensor, ...], *, dual: bool = False) -> torch.Tensor:
    if dual:
        values = DFQ_FP4.decode(codes)
        m_neg, m_pos = maxima
        return torch.where(values > 0, values * m_pos * 2 / E2M1_RANGE, values * m_neg * 2 / E1M2_RANGE)
    return FP4_E2M1.decode(codes) * maxima[0] * 2 / E2M1_RANGE


def mismatch_report(
    x: torch.Tensor, group_size: int = 128, *, dual: bool = False, tie: str = "even",
    index_bits: int = RECIPROCAL_INDEX_BITS,
) -> dict:
    """Compare the hardware's codes with the software quantizer's (round to nearest of x / s) on groups of x."""
    x = torch.as_tensor(x).to(torch.int64).reshape(-1, group_size)
    hw_codes, _ = quantize_group(x, dual=dual, tie=tie, index_bits=index_bits)
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
