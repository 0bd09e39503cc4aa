"""FP4 GEMM unit (rtl/src/fp4_gemm.v): LUT products, exact group sums, per-group scaling, exact accumulation.

Activations are FP4 codes with the quantizer's group maxima as scales (E2M1: m, a code of value v stands for
v m / 6; DFQ: m- for E1M2 negatives, v m- / 3.5, and m+ for E2M1 positives). Weights are E2M1 codes with one
unsigned fixed-point scale w per (output channel, group). For each output (row r, column c) and group g:

    S = sum over the group of product * 4 (the LUT multiplier's exact entries), and for DFQ S- and S+ apart by
        the activation code's sign bit;
    E2M1: contribution = S m w                     (output unit 1/24: S/4 * m/6 * w = S m w / 24)
    DFQ:  contribution = (12 S- m- + 7 S+ m+) w    (output unit 1/168: S-/4 * m-/3.5 = 12 S- m- / 168)

and the result is the sum of the contributions over the tile's groups, in OUT_WIDTH-bit two's complement. Every
step is exact integer arithmetic, so the unit adds no error of its own: its result times the output unit equals
the matrix product of the dequantized operands (tested).
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch

from ..formats import DFQ_FP4, FP4_E2M1
from ..quant import PerGroup, fake_quantize, quantize
from .fp4_encoder import E1M2_RANGE, E2M1_RANGE
from .fp4_lut_multiplier import PRODUCT_FRACTION_BITS, lut_multiplier_table
from .fp4_quantizer import quantize_group

PRODUCT_WIDTH = 9  # signed; |product * 4| <= 144
LATENCY = 5  # products and lane sums, group sum, x activation scale, x weight scale, accumulate
# S-/4 * 2 m-/7 = S- m- / 14 and S+/4 * 2 m+/12 = S+ m+ / 24: over the common denominator 168 the two halves
# weigh 12 and 7, the other side's range each.
DFQ_NEGATIVE_COEFFICIENT = E2M1_RANGE
DFQ_POSITIVE_COEFFICIENT = E1M2_RANGE


def output_unit(*, dual: bool = False) -> Fraction:
    """What one LSB of the result is worth, in (activation input unit) x (weight-scale unit)."""
    single = Fraction(2, 2**PRODUCT_FRACTION_BITS * E2M1_RANGE)  # product * 4 times m / 6: 1/24
    return single / DFQ_POSITIVE_COEFFICIENT if dual else single  # 1/168 for DFQ


def group_sum_width(group: int) -> int:
    """Bits of an exact group sum: |sum| <= 144 group < 2**(8 + ceil(log2 group))."""
    return PRODUCT_WIDTH + math.ceil(math.log2(group))


def contribution_width(group: int, scale_width: int, weight_scale_width: int, *, dual: bool = False) -> int:
    """Bits of one group's scaled contribution (DFQ: 12 |.| + 7 |.| < 2**5 |.|)."""
    return group_sum_width(group) + scale_width + (5 if dual else 0) + weight_scale_width


def _as_int64(name: str, value, shape: tuple[int, ...], high: int, low: int = 0) -> torch.Tensor:
    t = torch.as_tensor(value).to(torch.int64)
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape}")
    if t.numel() and (int(t.min()) < low or int(t.max()) > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got [{int(t.min())}, {int(t.max())}]")
    return t


def gemm(
    act_codes: torch.Tensor,
    act_max: torch.Tensor,
    weight_codes: torch.Tensor,
    weight_scale: torch.Tensor,
    *,
    dual: bool = False,
    group: int = 128,
    act_max_negative: torch.Tensor | None = None,
    scale_width: int = 16,
    weight_scale_width: int = 16,
    out_width: int = 64,
) -> list[list[int]]:
    """Results of one tile, exactly as fp4_gemm computes them.

    act_codes (rows, K) and weight_codes (cols, K) are 4-bit codes, K a multiple of ``group``; act_max (and, for
    DFQ, act_max_negative) is (rows, K / group), weight_scale (cols, K / group), all unsigned integers of their
    widths. Returns rows x cols Python integers. Raises OverflowError where a result does not fit ``out_width``
    bits (the RTL would wrap around), so a returned value is always what the RTL outputs.
    """
    act_codes = torch.as_tensor(act_codes).to(torch.int64)
    weight_codes = torch.as_tensor(weight_codes).to(torch.int64)
    if act_codes.dim() != 2 or weight_codes.dim() != 2 or act_codes.shape[1] != weight_codes.shape[1]:
        raise ValueError(f"need act_codes (rows, K) and weight_codes (cols, K), got {tuple(act_codes.shape)} and {tuple(weight_codes.shape)}")
    rows, k = act_codes.shape
    cols = weight_codes.shape[0]
    if group < 1 or k == 0 or k % group:
        raise ValueError(f"K = {k} must be a positive multiple of the group size {group}")
    groups = k // group
    if out_width < contribution_width(group, scale_width, weight_scale_width, dual=dual):
        raise ValueError(f"out_width {out_width} is narrower than one group's contribution "
                         f"({contribution_width(group, scale_width, weight_scale_width, dual=dual)} bits)")
    act_codes = _as_int64("act_codes", act_codes, (rows, k), 15)
    weight_codes = _as_int64("weight_codes", weight_codes, (cols, k), 15)
    act_max = _as_int64("act_max", act_max, (rows, groups), 2**scale_width - 1)
    weight_scale = _as_int64("weight_scale", weight_scale, (cols, groups), 2**weight_scale_width - 1)
    if dual:
        if act_max_negative is None:
            raise ValueError("DFQ needs act_max_negative, the negative side's group maxima")
        act_max_negative = _as_int64("act_max_negative", act_max_negative, (rows, groups), 2**scale_width - 1)

    table = lut_multiplier_table(dual=dual)
    products = table[(act_codes[:, None, :] << 4) | weight_codes[None, :, :]]  # (rows, cols, K)
    products = products.reshape(rows, cols, groups, group)
    negative = (act_codes >= 8).reshape(rows, 1, groups, group) if dual else torch.zeros(1, dtype=torch.bool)
    sum_negative = torch.where(negative, products, 0).sum(-1)  # (rows, cols, groups), exact in int64
    sum_positive = torch.where(negative, 0, products).sum(-1)
    if dual:
        scaled = (DFQ_NEGATIVE_COEFFICIENT * sum_negative * act_max_negative[:, None, :]
                  + DFQ_POSITIVE_COEFFICIENT * sum_positive * act_max[:, None, :])
    else:
        scaled = sum_positive * act_max[:, None, :]
    # |scaled| < 2**(15 + scale_width + 5) and w < 2**weight_scale_width: Python integers from here on
    scaled, weight_scale = scaled.tolist(), weight_scale.tolist()
    results = [[sum(s * w for s, w in zip(scaled[r][c], weight_scale[c], strict=True)) for c in range(cols)] for r in range(rows)]
    bound = 2 ** (out_width - 1)
    for row in results:
        for value in row:
            if not -bound <= value < bound:
                raise OverflowError(f"result {value} does not fit {out_width} bits; the RTL would wrap around")
    return results


def weight_scale_fixed_point(scale: torch.Tensor, width: int = 16) -> tuple[torch.Tensor, float]:
    """Unsigned ``width``-bit integers w and one power-of-two unit u with scale ~ w u (round to nearest): the
    largest scale uses the top bit, so its relative error is below 2**-width; smaller scales lose more."""
    scale = torch.as_tensor(scale, dtype=torch.float64)
    top = float(scale.max())
    if not top > 0:
        raise ValueError("weight scales must include a positive one")
    unit = 2.0 ** (math.floor(math.log2(top)) + 1 - width)
    return torch.round(scale / unit).clamp(max=2**width - 1).to(torch.int64), unit


def gemm_report(
    x: torch.Tensor,
    w: torch.Tensor,
    *,
    dual: bool = False,
    group: int = 128,
    tie: str = "even",
    scale_width: int = 24,
    weight_scale_width: int = 16,
    out_width: int = 72,
) -> dict:
    """The hardware path (fixed-point quantizer, fixed-point weight scales, fp4_gemm) against the software one
    (fpqvar.quant fake quantization, float64 matmul) on integer activations x (rows, K) and float weights
    w (cols, K). Weights are quantized by the software in both (offline); only their scales are rounded."""
    x = torch.as_tensor(x).to(torch.int64)
    w = torch.as_tensor(w, dtype=torch.float64)
    act_fmt = DFQ_FP4 if dual else FP4_E2M1
    codes, maxima = quantize_group(x.reshape(x.shape[0], -1, group), dual=dual, tie=tie)
    codes = codes.reshape(x.shape)
    act_max = maxima[-1].squeeze(-1)
    act_max_negative = maxima[0].squeeze(-1) if dual else None
    wq = quantize(w, FP4_E2M1, PerGroup(group), tie)
    ws, unit = weight_scale_fixed_point(wq.scale, weight_scale_width)
    result = gemm(codes, act_max, wq.codes.long(), ws, dual=dual, group=group, act_max_negative=act_max_negative,
                  scale_width=scale_width, weight_scale_width=weight_scale_width, out_width=out_width)
    hardware = torch.tensor([[float(v * output_unit(dual=dual)) for v in row] for row in result], dtype=torch.float64) * unit
    software = fake_quantize(x.double(), act_fmt, PerGroup(group), tie) @ fake_quantize(w, FP4_E2M1, PerGroup(group), tie).T
    exact = x.double() @ w.T
    sw_codes = quantize(x.double(), act_fmt, PerGroup(group), tie).codes.long()
    return {
        "activation_code_mismatch_rate": float((act_fmt.decode(codes) != act_fmt.decode(sw_codes)).double().mean()),
        "relative_error_vs_software": float((hardware - software).norm() / software.norm()),
        "relative_error_vs_unquantized": float((hardware - exact).norm() / exact.norm()),
        "software_relative_error_vs_unquantized": float((software - exact).norm() / exact.norm()),
    }


def gemm_job_cycles(beats: int) -> int:
    """Edges of one fp4_gemm job (tile) of ``beats`` activation beats: one beat per edge, then the latency."""
    return beats + LATENCY
