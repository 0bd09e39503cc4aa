"""Absmax quantizers: real (codes + scales), fake (quantize-dequantize) and straight-through.

Scale rules (paper Eq. 3 and Alg. 1):
  * FloatFormat / symmetric IntFormat: s = max|x| / max_value per scale group;
  * DualFormat (DFQ): s- = max(-x, x <= 0) / -min_value and s+ = max(x, x > 0) / max_value;
  * asymmetric IntFormat: s = max(max - min, 1e-5) / (2**n - 1) with a zero point, as the
    released code's INT path does.
The scale and x / s are computed in the input's dtype (as the released code does for fp16
activations); rounding and the dequantizing product run in float32, then cast back.
A group whose scale is 0 (all zeros) quantizes to 0. Non-finite elements (NaN, +-Inf) are left
out of the scale and quantize to 0, so no NaN reaches the output.
"""

from __future__ import annotations

import functools
import math
import types
from dataclasses import dataclass

import torch

from ..formats import DualFormat, Format, IntFormat, get_format
from .granularity import Granularity, PerGroup, PerTensor, PerToken, as_groups, scale_shape
from .rounding import Tie, round_to_format, round_to_integer

_ASYMMETRIC_MIN_RANGE = 1e-5  # the released code's floor on max - min


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


def _absmax(rows: torch.Tensor) -> torch.Tensor:
    """Per-row max |x| over the finite elements."""
    magnitude = rows.abs()
    return torch.where(magnitude < math.inf, magnitude, 0.0).amax(-1, keepdim=True)


def _quantize_groups(rows: torch.Tensor, fmt: Format, tie: Tie):
    """Grid values (float32) and scales of ``rows`` (one scale per row).

    A zero scale makes x / s NaN (0 / 0); non-finite x make it NaN or Inf. Rounding maps both to 0,
    so no mask is needed here.
    """
    if isinstance(fmt, DualFormat):
        negative_scale = _absmax(rows.clamp(max=0)) / -fmt.min_value
        scale = _absmax(rows.clamp(min=0)) / fmt.max_value
        scaled = rows / torch.where(rows > 0, scale, negative_scale)
        return round_to_format(scaled, fmt, tie), scale, negative_scale, None
    if isinstance(fmt, IntFormat) and not fmt.symmetric:
        finite = torch.nan_to_num(rows, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = finite.amin(-1, keepdim=True), finite.amax(-1, keepdim=True)
        scale = (high - low).clamp(min=_ASYMMETRIC_MIN_RANGE) / (fmt.max_value - fmt.min_value)
        zero_point = round_to_integer((fmt.min_value - low / scale).float(), tie)
        levels = round_to_integer((rows / scale).float(), tie) + zero_point
        levels = torch.where(torch.isfinite(rows), levels, zero_point)
        return levels.clamp(fmt.min_value, fmt.max_value), scale, None, zero_point
    scale = _absmax(rows) / fmt.max_value
    return round_to_format(rows / scale, fmt, tie), scale, None, None


def _dequantize_groups(levels, scale, negative_scale, zero_point) -> torch.Tensor:
    if zero_point is not None:
        return (levels - zero_point) * scale.float()
    if negative_scale is not None:
        return torch.where(levels > 0, levels * scale.float(), levels * negative_scale.float())
    return levels * scale.float()


def _check_input(x: torch.Tensor) -> None:
    if not torch.is_floating_point(x):
        raise TypeError(f"quantizers take a floating-point tensor, got {x.dtype}")


def fake_quantize(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie = "even",
) -> torch.Tensor:
    """Quantize then dequantize ``x``: the value the low-bit tensor stands for, in x's dtype."""
    _check_input(x)
    fmt = get_format(fmt)
    levels, scale, negative_scale, zero_point = _quantize_groups(as_groups(x, granularity), fmt, tie)
    return _dequantize_groups(levels, scale, negative_scale, zero_point).to(x.dtype).reshape(x.shape)


@functools.cache
def _compiled_fake_quantize(fmt: Format | str, granularity: Granularity, tie: Tie, dtype: torch.dtype):
    """fake_quantize compiled for one key. Dynamo keeps at most 8 compiled variants per code object, and a
    model with several formats, dtypes and row lengths needs more: each key gets a copy of the code, so its
    own allowance (a function whose variants ran out would fall back to eager mode, silently slow)."""
    code = fake_quantize.__code__.replace()  # equal, but a distinct object with its own dynamo cache
    function = types.FunctionType(code, fake_quantize.__globals__, fake_quantize.__name__, fake_quantize.__defaults__)
    # Keep the fp16/bf16 roundings of the scale and x / s that eager mode performs (inductor would skip them).
    return torch.compile(function, options={"emulate_precision_casts": True})


def fused_fake_quantize(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie = "even",
) -> torch.Tensor:
    """:func:`fake_quantize` as one fused kernel (torch.compile) on CUDA, where eager mode would launch ~15
    memory-bound kernels; plain eager elsewhere. Same operations, same results. Inside a compiled region
    it is traced like any other code, so the caller's kernels absorb it."""
    if torch.compiler.is_compiling() or not x.is_cuda:
        return fake_quantize(x, fmt, granularity, tie)
    _check_input(x)
    # Compiled on the (scales, elements per scale) rows with one scale per row: the kernel depends on the
    # format, dtype and row length only, never on the caller's shape (activations, KV (B, H, l, d), weights).
    # Row length static, row count dynamic: inductor emits one persistent reduction per row and returns a
    # view. (With a dynamic group size it emitted a looped reduction plus a copy to restore the shape, several
    # times slower: measured in benchmarks/README.md, "The fused quantizer".)
    rows = as_groups(x.contiguous(), granularity)
    per_row = granularity if isinstance(granularity, PerTensor) else PerToken()
    if isinstance(granularity, PerTensor):
        torch._dynamo.maybe_mark_dynamic(rows, 1)
    else:
        torch._dynamo.maybe_mark_dynamic(rows, 0)
        torch._dynamo.mark_static(rows, 1)
    return _compiled_fake_quantize(fmt, per_row, tie, x.dtype)(rows, fmt, per_row, tie).reshape(x.shape)


def fake_quantize_ste(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie = "even",
) -> torch.Tensor:
    """:func:`fake_quantize` forward, identity backward (straight-through estimator, for GALT)."""
    return x + (fused_fake_quantize(x.detach(), fmt, granularity, tie) - x).detach()


def quantize(
    x: torch.Tensor,
    fmt: Format | str,
    granularity: Granularity = PerGroup(128),
    tie: Tie = "even",
) -> QuantizedTensor:
    """Real quantization: the bit code of every element and the scales of every group."""
    _check_input(x)
    fmt = get_format(fmt)
    levels, scale, negative_scale, zero_point = _quantize_groups(as_groups(x, granularity), fmt, tie)
    shape = scale_shape(x.shape, granularity)
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
    levels = as_groups(q.fmt.decode(q.codes).to(torch.float32), q.granularity)
    rows = levels.shape[0]
    scale = q.scale.reshape(rows, 1)
    negative_scale = None if q.negative_scale is None else q.negative_scale.reshape(rows, 1)
    zero_point = None if q.zero_point is None else q.zero_point.reshape(rows, 1)
    return _dequantize_groups(levels, scale, negative_scale, zero_point).to(q.dtype).reshape(q.codes.shape)
