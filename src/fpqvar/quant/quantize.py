"""Absmax quantizers: real (codes + scales), fake (quantize-dequantize) and straight-through.

Scale rules (paper Eq. 3 and Alg. 1):
  * FloatFormat / symmetric IntFormat: s = max|x| / max_value per scale group;
  * DualFormat (DFQ): s- = max(-x, x <= 0) / -min_value and s+ = max(x, x > 0) / max_value;
  * asymmetric IntFormat: s = max(max - min, 1e-5) / (2**n - 1) with a zero point, as the
    released code's INT path does.

Arithmetic (``Numerics``): the scale and x / s are computed in float32 (float64 for a float64 input), or
with ``scale_dtype="input"`` in the input's dtype as the released code does for fp16 activations; rounding
(exact, ``rounding.py``) and the dequantizing product run in float32, then the result is cast back.

No Inf or NaN leaves a quantizer: non-finite elements (NaN, +-Inf) are left out of the scale and quantize
to 0; a group whose scale is 0 (all zeros) quantizes to 0; a dequantized value beyond the dtype's largest
finite value (fp16 65504 with E2M1: 6 x 10920 = 65520) saturates to it; an asymmetric range max - min
that overflows is formed as max / n - min / n, and where the 1e-5 floor on it makes x / s overflow (a row of
equal values beyond ~1.3e31), s = max|x| / n. Limit: a float32 scale below 2**-126 (fp32 or bf16 groups
with absmax below max_value * 2**-126, ~7e-38 for E2M1) is subnormal and has fewer bits, and below
max_value * 2**-149 it is 0 and the group quantizes to 0 (``tests/test_quantize.py`` pins both).
Empty tensors give empty results.
"""

from __future__ import annotations

import functools
import math
import types
from dataclasses import dataclass

import torch

from ..formats import DualFormat, Format, IntFormat, get_format
from . import fused_kernel
from .granularity import Granularity, PerGroup, PerTensor, PerToken, as_groups, scale_shape
from .numerics import ASYMMETRIC_MIN_RANGE, Numerics, as_numerics
from .rounding import Tie, round_to_format, round_to_integer


@dataclass
class QuantizedTensor:
    """Bit codes of a tensor plus what is needed to dequantize them."""

    codes: torch.Tensor  # uint8, the shape of the original tensor
    scale: torch.Tensor  # for a DualFormat, the scale of the positive half
    fmt: Format
    granularity: Granularity
    dtype: torch.dtype
    negative_scale: torch.Tensor | None = None  # DualFormat only
    zero_point: torch.Tensor | None = None  # asymmetric IntFormat only

    def dequantize(self) -> torch.Tensor:
        return dequantize(self)


def _work_dtype(dtype: torch.dtype, numerics: Numerics) -> torch.dtype:
    if dtype == torch.float64:
        return torch.float64
    return dtype if numerics.scale_dtype == "input" else torch.float32


def _divide(numerator: torch.Tensor, denominator: torch.Tensor | float, dtype: torch.dtype) -> torch.Tensor:
    """numerator / denominator, correctly rounded to ``dtype`` in eager and compiled mode alike.

    Under torch.compile on CUDA, Triton's float32 '/' is approximate (div.full, up to 2 ulp) and inductor turns
    a division by a constant into a product with its reciprocal; both move quotients that lie near a rounding
    boundary (x / s near a grid midpoint). So a compiled quotient is the float64 product of the numerator and
    the float64 reciprocal of the denominator, rounded once to ``dtype``: the same bits as the eager division
    wherever the quotient is a normal number of ``dtype``, because a quotient of floats of at most 24 bits is
    never a midpoint of float32 (or a narrower dtype) and never lies within 2**-49 (relative) of one, while the
    product's error is at most 2**-52. (A float32 quotient below 2**-126, far below every grid's first
    midpoint, may differ in its last bits; it rounds to the grid's zero either way.) The reciprocal
    is taken of the per-group scale, once per group inside the fused kernel; a float64 division per element
    (a long instruction sequence) had made the compiled quantizer compute-bound at 0.59x of a copy's
    bandwidth on float32 input, 0.74x after (benchmarks/README.md, quantizer throughput on the H200). float64
    work stays as it is.

    In eager mode on CUDA, a tensor divided by a Python number is computed as a product with the number's
    reciprocal (ATen's div_true_kernel_cuda, "may lose one bit of precision"): x / 6 for E2M1. So a number
    becomes a tensor on the numerator's device first, which takes the IEEE division path. (Every denominator
    given here, a format's max_value or level count, is exact in the work dtype.)
    """
    if torch.compiler.is_compiling() and dtype != torch.float64:
        wide = denominator.double() if isinstance(denominator, torch.Tensor) else float(denominator)
        return (numerator.double() * (1.0 / wide)).to(dtype)
    if isinstance(denominator, torch.Tensor):
        return numerator.to(dtype) / denominator.to(dtype)
    return numerator.to(dtype) / numerator.new_full((), denominator, dtype=dtype)  # a fill: no copy, graph-safe


def _absmax(rows: torch.Tensor) -> torch.Tensor:
    """Per-row max |x| over the finite elements."""
    magnitude = rows.abs()
    return torch.where(magnitude < math.inf, magnitude, 0.0).amax(-1, keepdim=True)


def _asymmetric_scale(low: torch.Tensor, high: torch.Tensor, levels: float, work: torch.dtype) -> torch.Tensor:
    """max(high - low, 1e-5) / levels; where high - low overflows the dtype, high / levels - low / levels; where
    x / s would overflow, max(|low|, |high|) / levels.

    The last case is a row of equal values beyond ~1.3e31 in float32 work (the floor makes s = 3.9e-8), or in
    fp16 work any row narrower than 1e-5 beyond ~0.004 (s is fp16's smallest subnormal): the released rule
    returns NaN there, this scale the row's values to within a step (2**n - 1 steps of absmax / levels)."""
    span = (high - low).clamp(min=ASYMMETRIC_MIN_RANGE)
    scale = _divide(span, levels, work)
    scale = torch.where(scale < math.inf, scale, _divide(high, levels, work) - _divide(low, levels, work))
    magnitude = torch.maximum(low.abs(), high.abs())
    return torch.where(_divide(magnitude, scale, work) < math.inf, scale, _divide(magnitude, levels, work))


def _quantize_groups(rows: torch.Tensor, fmt: Format, numerics: Numerics):
    """Grid values (float32; float64 for float64 rows) and scales of ``rows`` (one scale per row).

    A zero scale makes x / s NaN (0 / 0); non-finite x make it NaN or Inf. Rounding maps both to 0,
    so no mask is needed here.
    """
    work = _work_dtype(rows.dtype, numerics)
    # fp16/bf16 rows widen to float32 work once, here: the absmax, compare and select steps give the same values
    # in either dtype, but compiled with emulate_precision_casts every fp16/bf16 intermediate costs a round trip
    # of conversions (the compiled bf16 kernel was bound by them: benchmarks/README.md, quantizer throughput).
    rows = rows.to(work)
    tie = numerics.tie_for(fmt)
    if isinstance(fmt, DualFormat):
        negative_scale = _divide(_absmax(rows.clamp(max=0)), -fmt.min_value, work)
        scale = _divide(_absmax(rows.clamp(min=0)), fmt.max_value, work)
        # two quotients selected, not one by selected scales: compiled, each reciprocal is then one per group
        scaled = torch.where(rows > 0, _divide(rows, scale, work), _divide(rows, negative_scale, work))
        return round_to_format(scaled, fmt, tie), scale, negative_scale, None
    if isinstance(fmt, IntFormat) and not fmt.symmetric:
        level_dtype = torch.float64 if work == torch.float64 else torch.float32
        finite = torch.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = finite.amin(-1, keepdim=True), finite.amax(-1, keepdim=True)
        scale = _asymmetric_scale(low, high, fmt.max_value - fmt.min_value, work)
        zero_point = round_to_integer((fmt.min_value - _divide(low, scale, work)).to(level_dtype), tie)
        levels = round_to_integer(_divide(rows, scale, work).to(level_dtype), tie) + zero_point
        levels = torch.where(torch.isfinite(rows), levels, zero_point)
        return levels.clamp(fmt.min_value, fmt.max_value), scale, None, zero_point
    absmax = _absmax(rows)
    if isinstance(fmt, IntFormat) and numerics.int_absmax_floor:
        absmax = absmax.clamp(min=numerics.int_absmax_floor)
    scale = _divide(absmax, fmt.max_value, work)
    return round_to_format(_divide(rows, scale, work), fmt, tie), scale, None, None


def _dequantize_groups(levels, scale, negative_scale, zero_point, dtype: torch.dtype) -> torch.Tensor:
    """levels x scale in the levels' dtype, saturated to ``dtype``'s finite range, cast to ``dtype``."""
    if zero_point is not None:
        values = (levels - zero_point) * scale.to(levels.dtype)
    elif negative_scale is not None:
        values = torch.where(levels > 0, levels * scale.to(levels.dtype), levels * negative_scale.to(levels.dtype))
    else:
        values = levels * scale.to(levels.dtype)
    largest = torch.finfo(dtype).max
    return values.clamp(-largest, largest).to(dtype)


def _check_input(x: torch.Tensor) -> None:
    if not torch.is_floating_point(x):
        raise TypeError(f"quantizers take a floating-point tensor, got {x.dtype}")


def fake_quantize(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie | Numerics = "even",
) -> torch.Tensor:
    """Quantize then dequantize ``x``: the value the low-bit tensor stands for, in x's dtype.

    ``tie``: a tie mode for every format, or a :class:`Numerics` (tie per format family, arithmetic)."""
    _check_input(x)
    fmt = get_format(fmt)
    groups = as_groups(x, granularity)
    if x.numel() == 0:
        return x.clone()
    levels, scale, negative_scale, zero_point = _quantize_groups(groups, fmt, as_numerics(tie))
    return _dequantize_groups(levels, scale, negative_scale, zero_point, x.dtype).reshape(x.shape)


def _compile_options() -> dict[str, bool]:
    """Inductor options that keep eager mode's numerics: the fp16/bf16 roundings of the scale and x / s
    (which inductor would skip; this also turns off FMA contraction) and float32 subnormals (which Triton
    may flush to zero). The second option is set where the installed torch has it."""
    import torch._inductor.config as inductor_config  # loaded by torch.compile anyway; only CUDA callers get here

    options = {"emulate_precision_casts": True}
    if "eager_numerics.disable_ftz" in inductor_config.get_config_copy():
        options["eager_numerics.disable_ftz"] = True
    return options


@functools.cache
def _compiled_fake_quantize(fmt: Format, granularity: Granularity, numerics: Numerics, dtype: torch.dtype):
    """fake_quantize compiled for one key. Dynamo keeps at most 8 compiled variants per code object, and a
    model with several formats, dtypes and row lengths needs more: each key gets a copy of the code, so its
    own allowance (a function whose variants ran out would fall back to eager mode, silently slow).

    ``dynamic=False``: the copies share dynamo's record of which values changed between calls (it is keyed by
    file, line and name), so with automatic dynamism a format's integer fields became symbols once two formats
    had been seen (torch 2.11 then failed: "BooleanAtom not allowed", from ``FloatFormat.max_value``). Only the
    row count is dynamic, marked explicitly by the caller."""
    code = fake_quantize.__code__.replace()  # equal, but a distinct object with its own dynamo cache
    function = types.FunctionType(code, fake_quantize.__globals__, fake_quantize.__name__, fake_quantize.__defaults__)
    return torch.compile(function, dynamic=False, options=_compile_options())


def _half_precision_work(dtype: torch.dtype, numerics: Numerics) -> bool:
    """Whether the scale and x / s are computed in fp16 or bf16 (``scale_dtype="input"``, the released
    arithmetic). Compiled, that case was not bit-exact on an H200 (torch 2.11, 2026-12-02): E2M1 and DFQ on fp16
    rows came out one fp16 ulp off (6.0078 for 6; the test stops at the first sweep, scale 1), while every
    float32-work case matched eager and the exact reference. So it stays eager, which is exact."""
    return numerics.scale_dtype == "input" and dtype in (torch.float16, torch.bfloat16)


def compiled_fake_quantize(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie | Numerics = "even",
) -> torch.Tensor:
    """:func:`fake_quantize` as one fused kernel on CUDA, where eager mode launches ~15 memory-bound kernels;
    plain eager elsewhere. Every format with one scale per row of at most ``fused_kernel.MAX_ROW`` elements runs
    the hand-written Triton kernels of ``fused_kernel.py``; the rest (per tensor, the released symmetric INT
    absmax floor, float64) runs ``fake_quantize`` compiled by torch.compile. Both give eager's bits
    (``_divide`` says how compiled divisions stay exact): ``tests/test_quantize.py`` checks every format, tie and arithmetic on the midpoint sweeps on a
    GPU. The released arithmetic on fp16/bf16 (scale and x / s in the input's dtype) runs eager: compiled, it
    was not exact. Inside a compiled region (a compiled model) it is traced like any other code, so the
    caller's kernels absorb it; there that released fp16/bf16 case is not guaranteed bit-exact either."""
    numerics = as_numerics(tie)
    if torch.compiler.is_compiling() or not x.is_cuda or x.numel() == 0 or _half_precision_work(x.dtype, numerics):
        return fake_quantize(x, fmt, granularity, numerics)
    _check_input(x)
    fmt = get_format(fmt)
    rows = as_groups(x.contiguous(), granularity)
    # the Triton kernel has no backward: a call that records autograd keeps torch.compile's, with eager's gradient
    recording = x.requires_grad and torch.is_grad_enabled()
    if not recording and fused_kernel.supported(fmt, rows.shape[1], x.dtype, _work_dtype(x.dtype, numerics),
                                                int_absmax_floor=numerics.int_absmax_floor):
        return fused_kernel.fused_fake_quantize_rows(rows, fmt, numerics.tie_for(fmt)).reshape(x.shape)
    # Compiled on the (scales, elements per scale) rows with one scale per row: the kernel depends on the
    # format, dtype and row length only, never on the caller's shape (activations, KV (B, H, l, d), weights).
    # Row length static, row count dynamic: inductor emits one persistent reduction per row and returns a
    # view. (With a dynamic group size it emitted a looped reduction plus a copy to restore the shape, several
    # times slower: measured in benchmarks/README.md, "The fused quantizer".)
    per_row = granularity if isinstance(granularity, PerTensor) else PerToken()
    if isinstance(granularity, PerTensor):
        torch._dynamo.maybe_mark_dynamic(rows, 1)
    else:
        torch._dynamo.maybe_mark_dynamic(rows, 0)
        torch._dynamo.mark_static(rows, 1)
    return _compiled_fake_quantize(fmt, per_row, numerics, x.dtype)(rows, fmt, per_row, numerics).reshape(x.shape)


class _StraightThrough(torch.autograd.Function):
    """Forward: the quantized tensor, exactly (x + (q - x).detach() would be NaN where x is +-Inf).
    Backward: the incoming gradient unchanged."""

    @staticmethod
    def forward(ctx, x, quantized):
        return quantized

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def fake_quantize_ste(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie | Numerics = "even",
) -> torch.Tensor:
    """:func:`fake_quantize` forward, identity backward (straight-through estimator, for GALT)."""
    return _StraightThrough.apply(x, compiled_fake_quantize(x.detach(), fmt, granularity, tie))


def quantize(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie | Numerics = "even",
) -> QuantizedTensor:
    """Real quantization: the bit code of every element and the scales of every group."""
    _check_input(x)
    fmt, numerics = get_format(fmt), as_numerics(tie)
    groups = as_groups(x, granularity)
    shape = scale_shape(x.shape, granularity)
    if x.numel() == 0:
        zeros = torch.zeros(shape, dtype=_work_dtype(x.dtype, numerics), device=x.device)
        levels, scale = torch.zeros(x.shape, dtype=torch.float32, device=x.device), zeros
        negative_scale = zeros if isinstance(fmt, DualFormat) else None
        zero_point = zeros.float() if isinstance(fmt, IntFormat) and not fmt.symmetric else None
    else:
        levels, scale, negative_scale, zero_point = _quantize_groups(groups, fmt, numerics)
    return QuantizedTensor(
        codes=fmt.encode(levels).to(torch.uint8).reshape(x.shape),
        scale=scale.reshape(shape),
        fmt=fmt,
        granularity=granularity,
        dtype=x.dtype,
        negative_scale=None if negative_scale is None else negative_scale.reshape(shape),
        zero_point=None if zero_point is None else zero_point.reshape(shape),
    )


def dequantize(q: QuantizedTensor) -> torch.Tensor:
    """The tensor ``q`` stands for, in its original dtype: equal, bit for bit, to fake_quantize."""
    if q.codes.numel() == 0:
        return torch.empty(q.codes.shape, dtype=q.dtype, device=q.codes.device)
    level_dtype = torch.float64 if q.scale.dtype == torch.float64 else torch.float32
    levels = as_groups(q.fmt.decode(q.codes).to(level_dtype), q.granularity)
    rows = levels.shape[0]
    scale = q.scale.reshape(rows, 1)
    negative_scale = None if q.negative_scale is None else q.negative_scale.reshape(rows, 1)
    zero_point = None if q.zero_point is None else q.zero_point.reshape(rows, 1)
    return _dequantize_groups(levels, scale, negative_scale, zero_point, q.dtype).reshape(q.codes.shape)
