"""A hand-written Triton kernel for fake quantization on grid formats (CUDA; used by ``compiled_fake_quantize``).

Why not only torch.compile: the inductor kernel of ``fake_quantize`` is bound by its arithmetic, at the same
elements per second for float32 and bf16 input, so bf16 ran at about half a copy's bandwidth
(``benchmarks/README.md``, quantizer throughput). This kernel does the same arithmetic in fewer steps: one read
of each row, the absmax scale(s), x / s, the exact rounding of ``rounding.round_to_format`` (every tie mode),
the dequantizing product, one write.

Bits: the same as ``fake_quantize`` in float32 work. The scale and x / s are IEEE float32 divisions
(``div_rn``), as eager mode divides; the rounding reads the spacing off the exponent bits and rounds with
``rint`` (IEEE round-half-even) and the same tie corrections; products with powers of two are exact; FMA
contraction and the flushing of subnormals in libdevice are turned off at launch. ``tests/test_quantize.py``
checks it against eager CUDA and the CPU reference on the float32 midpoint sweeps at subnormal scales.

Covers FloatFormat and DualFormat grids (a dual format's halves may be integer grids) with one scale (pair)
per row of at most ``MAX_ROW`` elements, in float32 work (not float64, not the released fp16/bf16 arithmetic);
everything else stays with the compiled quantizer.
"""

from __future__ import annotations

import functools

import torch

from ..formats import DualFormat, FloatFormat, Format
from .rounding import TIES, Tie, _Binades, _binades

try:  # Triton is optional: CPU-only installs use the compiled (or eager) quantizer
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice

    HAVE_TRITON = True
except ImportError:  # pragma: no cover - depends on the installation
    HAVE_TRITON = False

MAX_ROW = 16384  # one row per program up to this length; longer rows (per tensor) stay compiled
_BLOCK_ELEMENTS = 2048  # rows x row length per program: 16 groups of 128, the low-bit activation kernel's best tile
_FP32_BIAS = 127
_OUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def supported(fmt: Format, row_length: int, dtype: torch.dtype, work: torch.dtype) -> bool:
    """Whether :func:`fused_fake_quantize_rows` computes this case (else the caller compiles ``fake_quantize``)."""
    return (HAVE_TRITON and isinstance(fmt, (FloatFormat, DualFormat)) and dtype in _OUT_DTYPES
            and work == torch.float32 and 0 < row_length <= MAX_ROW)


def _half_constants(b: _Binades, tie: Tie, prefix: str) -> dict:
    """One grid half's rounding constants: clamp range of the exponent field, mantissa bits, whether a tie at
    1.5 steps goes by the parity of the format's exponent field (no mantissa bits, ties to even), that bias."""
    return {f"{prefix}_MIN_FIELD": b.min_exponent + _FP32_BIAS, f"{prefix}_MAX_FIELD": b.max_exponent + _FP32_BIAS,
            f"{prefix}_MBITS": b.mantissa_bits,
            f"{prefix}_EVEN_FIELD": tie == "even" and b.exponent_coded_bias is not None,
            f"{prefix}_CODED_BIAS": b.exponent_coded_bias or 0}


@functools.cache  # built once per (format, tie): the quantizer is called per layer and step while sampling
def _constants(fmt: Format, tie: Tie) -> dict:
    if isinstance(fmt, DualFormat):
        negative, positive = _binades(fmt.negative, high=0.0), _binades(fmt.positive, low=0.0)
        max_pos, max_neg, low, high = fmt.max_value, -fmt.min_value, negative.low, positive.high
    else:
        negative = positive = _binades(fmt)
        max_pos = max_neg = fmt.max_value
        low, high = positive.low, positive.high
    return {"DUAL": isinstance(fmt, DualFormat), "TIE": TIES.index(tie), "MAX_POS": float(max_pos),
            "MAX_NEG": float(max_neg), "LOW": float(low), "HIGH": float(high),
            **_half_constants(positive, tie, "P"), **_half_constants(negative, tie, "N")}


if HAVE_TRITON:

    @triton.jit
    def _fake_quantize_rows_kernel(
        x_ptr, out_ptr, rows, row_length, out_max,
        BLOCK_R: tl.constexpr, BLOCK_L: tl.constexpr, DUAL: tl.constexpr, TIE: tl.constexpr,
        MAX_POS: tl.constexpr, MAX_NEG: tl.constexpr, LOW: tl.constexpr, HIGH: tl.constexpr,
        P_MIN_FIELD: tl.constexpr, P_MAX_FIELD: tl.constexpr, P_MBITS: tl.constexpr, P_EVEN_FIELD: tl.constexpr,
        P_CODED_BIAS: tl.constexpr,
        N_MIN_FIELD: tl.constexpr, N_MAX_FIELD: tl.constexpr, N_MBITS: tl.constexpr, N_EVEN_FIELD: tl.constexpr,
        N_CODED_BIAS: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
        col = tl.arange(0, BLOCK_L)
        mask = (row < rows)[:, None] & (col < row_length)[None, :]
        offsets = row[:, None] * row_length + col[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)

        # scales: absmax of the finite elements (of each sign, for a dual format) over the format's maximum
        magnitude = tl.abs(x)
        finite = magnitude < float("inf")
        if DUAL:
            s_pos = tl.math.div_rn(tl.max(tl.where(finite & (x > 0), magnitude, 0.0), axis=1), MAX_POS)[:, None]
            s_neg = tl.math.div_rn(tl.max(tl.where(finite & (x < 0), magnitude, 0.0), axis=1), MAX_NEG)[:, None]
            y = tl.math.div_rn(x, tl.where(x > 0, s_pos, s_neg))
        else:
            s_pos = tl.math.div_rn(tl.max(tl.where(finite, magnitude, 0.0), axis=1), MAX_POS)[:, None]
            s_neg = s_pos
            y = tl.math.div_rn(x, s_pos)

        # rounding.round_to_format: NaN and +-Inf (a zero scale, non-finite x) -> +0; spacing from the exponent
        field = (y.to(tl.int32, bitcast=True) >> 23) & 0xFF
        y = tl.where(field == 0xFF, 0.0, y)
        positive = y > 0
        clamped = tl.minimum(tl.maximum(field, tl.where(positive, P_MIN_FIELD, N_MIN_FIELD)),
                             tl.where(positive, P_MAX_FIELD, N_MAX_FIELD))
        spacing_field = clamped - tl.where(positive, P_MBITS, N_MBITS)
        steps = y * ((254 - spacing_field) << 23).to(tl.float32, bitcast=True)  # exact: times 2**-k (254: 2 x bias)
        nearest = libdevice.rint(steps)
        if TIE == 0:
            if P_EVEN_FIELD or N_EVEN_FIELD:  # no mantissa: a tie at 1.5 steps goes to the even exponent field
                even_p = (((clamped - 127 + P_CODED_BIAS) & 1) == 0) & P_EVEN_FIELD  # 127: float32's bias
                even_n = (((clamped - 127 + N_CODED_BIAS) & 1) == 0) & N_EVEN_FIELD
                even = tl.where(positive, even_p, even_n)
                nearest = tl.where((tl.abs(steps) == 1.5) & even, tl.where(steps > 0, 1.0, -1.0), nearest)
            rounded = (nearest + 1.0) - 1.0  # -0 -> +0
        elif TIE == 1:
            rounded = nearest + tl.where(steps - nearest == 0.5, 1.0, 0.0)
        else:
            rounded = (nearest - 1.0) + tl.where(steps - nearest != -0.5, 1.0, 0.0)
        level = tl.minimum(tl.maximum(rounded * (spacing_field << 23).to(tl.float32, bitcast=True), LOW), HIGH)

        # quantize._dequantize_groups: the level times its scale, saturated to the output dtype's range
        value = level * tl.where(level > 0, s_pos, s_neg)
        value = tl.minimum(tl.maximum(value, -out_max), out_max)
        tl.store(out_ptr + offsets, value.to(out_ptr.dtype.element_ty, fp_downcast_rounding="rtne"), mask=mask)


def fused_fake_quantize_rows(rows: torch.Tensor, fmt: Format, tie: Tie, *, block_rows: int | None = None,
                             num_warps: int | None = None) -> torch.Tensor:
    """``fake_quantize`` of a contiguous CUDA (rows, row length) tensor with one scale (pair) per row, in the
    rows' dtype; the case must be :func:`supported`. ``block_rows``, ``num_warps``: the tile (rows per program,
    a power of two; default 2048 elements per program) and its warps, for tuning; the bits do not depend on them."""
    count, length = rows.shape
    block_l = triton.next_power_of_2(length)
    block_r = block_rows or max(1, _BLOCK_ELEMENTS // block_l)
    out = torch.empty_like(rows)
    _fake_quantize_rows_kernel[(triton.cdiv(count, block_r),)](
        rows, out, count, length, torch.finfo(rows.dtype).max, BLOCK_R=block_r, BLOCK_L=block_l,
        num_warps=num_warps or (4 if block_l <= 2048 else 8), enable_fp_fusion=False, enable_reflect_ftz=False,
        **_constants(fmt, tie),
    )
    return out
