"""The FP4 quantizer of the paper's Fig. 7d/7g in fixed point: the scale pass and the encode pass, bit-exact.

Inputs are signed integers (the FHT unit's output, one group per call). Scale pass: m = max|x| over the group
(DFQ: m- over x <= 0 and m+ over x > 0) and a reciprocal r = floor(R * 2**K / m) with R = 12 for E2M1 (7 for
E1M2 negatives). Encode pass: t = floor((x * r + 2**(K-1)) / 2**K), i.e. round(R x / m) with ties toward +inf,
then the code table of `fp4_encoder`. The dequantized value is decode(code) * m * 2 / R.

Rounding twice (x to the integer t, then t to the grid) and the truncated reciprocal make this differ from a
direct round-to-nearest of x / s on a few values; `mismatch_report` measures how often.
"""

from __future__ import annotations

import torch

from ..formats import DFQ_FP4, FP4_E2M1
from ..quant import PerGroup, quantize
from .fp4_encoder import E1M2_RANGE, E2M1_RANGE, encode_scaled

RECIPROCAL_FRACTION_BITS = 24


def _scaled(x: torch.Tensor, m: torch.Tensor, R: int, K: int) -> torch.Tensor:
    reciprocal = torch.where(m > 0, (R << K) // m.clamp(min=1), torch.zeros_like(m))
    return (x * reciprocal + (1 << (K - 1))) >> K  # floor division by 2**K: round half up


def quantize_group(x: torch.Tensor, dual: bool = False, tie: str = "even", K: int = RECIPROCAL_FRACTION_BITS):
    """Codes (int64, like x) and the group maxima (m, or (m-, m+) for DFQ) of int64 groups along the last dim."""
    x = torch.as_tensor(x).to(torch.int64)
    if dual:
        m_neg = (-x).clamp(min=0).amax(-1, keepdim=True)
        m_pos = x.clamp(min=0).amax(-1, keepdim=True)
        t = torch.where(x > 0, _scaled(x, m_pos, E2M1_RANGE, K), _scaled(x, m_neg, E1M2_RANGE, K))
        maxima = (m_neg, m_pos)
    else:
        m = x.abs().amax(-1, keepdim=True)
        t = _scaled(x, m, E2M1_RANGE, K)
        maxima = (m,)
    # every 5-bit input the encoder can see, saturation included, as one look-up tensor
    lookup = torch.tensor([encode_scaled(v, dual, tie) for v in range(-16, 16)], device=t.device)
    return lookup[t.clamp(-16, 15) + 16], maxima


def dequantize_group(codes: torch.Tensor, maxima: tuple[torch.Tensor, ...], dual: bool = False) -> torch.Tensor:
    if dual:
        values = DFQ_FP4.decode(codes)
        m_neg, m_pos = maxima
        return torch.where(values > 0, values * m_pos * 2 / E2M1_RANGE, values * m_neg * 2 / E1M2_RANGE)
    return FP4_E2M1.decode(codes) * maxima[0] * 2 / E2M1_RANGE


def mismatch_report(x: torch.Tensor, group_size: int = 128, dual: bool = False, tie: str = "even") -> dict:
    """Compare the hardware's codes with the software quantizer's (round to nearest of x / s) on groups of x."""
    x = torch.as_tensor(x).to(torch.int64).reshape(-1, group_size)
    hw_codes, maxima = quantize_group(x, dual, tie)
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
