"""Round already-scaled values to the nearest value of a format's grid, exactly, in closed form.

No scan over the grid: the spacing of the binade each value falls in is read off its exponent bits,
so rounding is a handful of elementwise ops that fuse into one kernel under ``torch.compile``.
Values beyond the grid saturate to its ends; NaN and +-Inf become 0, as in the released CUDA kernel.

Ties (a value exactly between two grid points) follow ``tie``:
  * ``"even"``: the neighbour whose bit code is even (round-half-to-even, the OCP MX rule);
  * ``"up"``:   toward +inf, what the released ``quant_cuda`` kernel does (last grid entry wins);
  * ``"down"``: toward -inf, what the released pure-PyTorch argmin fallback does (first entry wins).

Exact for every finite float16, bfloat16, float32 and float64 input, because no step rounds:
  * the spacing is a power of two built from exponent bits (integer ops), so y / spacing and
    steps * spacing are exact products with 2**-k and 2**k;
  * ``round`` is IEEE round-half-even, and y - round(y) is exact (|y - round(y)| <= 1/2), so a tie is
    found by comparing that difference with +-1/2. ``floor(y + 1/2)`` is not exact: at
    y = 1/2 - 2**-25 the sum itself rounds to 1 and the result jumps a whole grid step.
Nothing here can change under ``torch.compile``: there is no division, every product is exact in
either order (so an FMA contraction gives the same bits), and the rest is integer and compare ops.

Signed zero: every zero returned is +0.0, whatever the tie mode and the sign of the input. A format has
one zero code (``encode(-0.0)`` is code 0, which decodes to +0.0), so fake quantization returns the
bits that real quantization and the hardware golden models return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..formats import DualFormat, FloatFormat, Format, IntFormat

Tie = Literal["even", "up", "down"]
TIES: tuple[str, ...] = ("even", "up", "down")


def check_tie(tie: str) -> None:
    if tie not in TIES:
        raise ValueError(f"tie must be one of {TIES}, got {tie!r}")


def round_to_integer(y: torch.Tensor, tie: Tie = "even") -> torch.Tensor:
    """Nearest integer (unbounded), ties as ``tie``, zero as +0.0; exact for every float (module docstring).

    Each mode's last operation turns a -0.0 from round() into +0.0 (-0 + 0 = +0 and -1 + 1 = +0): an explicit
    ``+ 0.0`` would be removed by inductor as a no-op. (For |y| >= 2**24 in float32, (n + 1) - 1 may move n
    by 2; such values lie far beyond every grid, whose clamp follows.)"""
    check_tie(tie)
    nearest = torch.round(y)
    if tie == "even":
        return (nearest + 1) - 1
    off = y - nearest  # exact; +-1/2 only at a tie, which round() sent to the even neighbour
    if tie == "up":
        return nearest + (off == 0.5)
    return (nearest - 1) + (off != -0.5)


@dataclass(frozen=True)
class _FloatBits:
    """Where the exponent sits in a float dtype's bits."""

    integer: torch.dtype
    mantissa_bits: int
    bias: int

    @property
    def exponent_mask(self) -> int:
        return (2 * self.bias + 1) << self.mantissa_bits

    def field(self, exponent: int) -> int:
        """Exponent bits (in place) of 2**exponent."""
        return (exponent + self.bias) << self.mantissa_bits


_FLOAT_BITS = {
    torch.float32: _FloatBits(torch.int32, 23, 127),
    torch.float64: _FloatBits(torch.int64, 52, 1023),
}


@dataclass(frozen=True)
class _Binades:
    """What rounding needs of one (half of a) grid: the unbiased exponents of its lowest and highest binade,
    the mantissa bits (2**mantissa_bits steps per binade), the clamp range and, for a grid without mantissa
    bits, the format's exponent bias (its ties pick the even exponent field)."""

    min_exponent: int
    max_exponent: int
    mantissa_bits: int
    low: float
    high: float
    exponent_coded_bias: int | None = None


def _binades(fmt: FloatFormat | IntFormat, *, low: float | None = None, high: float | None = None) -> _Binades:
    if isinstance(fmt, IntFormat):  # one binade of spacing 1
        return _Binades(0, 0, 0, fmt.min_value if low is None else low, fmt.max_value if high is None else high)
    return _Binades(
        fmt.min_exponent, fmt.max_exponent, fmt.mantissa_bits,
        fmt.min_value if low is None else low, fmt.max_value if high is None else high,
        fmt.bias if fmt.mantissa_bits == 0 else None,
    )


def _spacing_bits(field: torch.Tensor, b: _Binades, layout: _FloatBits) -> torch.Tensor:
    """Bits of each value's grid spacing 2**(e - m), e the value's binade clamped to the grid's."""
    clamped = field.clamp(layout.field(b.min_exponent), layout.field(b.max_exponent))
    return clamped - (b.mantissa_bits << layout.mantissa_bits)


def _even_exponent_field(field: torch.Tensor, b: _Binades, layout: _FloatBits) -> torch.Tensor:
    """For a grid without mantissa bits: whether the grid value 2**e at the bottom of each value's binade has
    an even exponent field (e + the format's bias)."""
    clamped = field.clamp(layout.field(b.min_exponent), layout.field(b.max_exponent))
    return (((clamped >> layout.mantissa_bits) + (b.exponent_coded_bias - layout.bias)) & 1) == 0


def round_to_format(y: torch.Tensor, fmt: Format, tie: Tie = "even") -> torch.Tensor:
    """Nearest grid value of ``fmt`` to each element of ``y`` (which is already divided by its scale).

    Returns float32 (float64 for a float64 ``y``). For a :class:`DualFormat`, ``y <= 0`` rounds on the
    negative format's non-positive half and ``y > 0`` on the positive format's non-negative half.
    """
    check_tie(tie)
    if not isinstance(fmt, (FloatFormat, IntFormat, DualFormat)):
        raise TypeError(f"round_to_format takes a FloatFormat, IntFormat or DualFormat, not {type(fmt).__name__}")
    dtype = torch.float64 if y.dtype == torch.float64 else torch.float32
    layout = _FLOAT_BITS[dtype]
    bits = y.to(dtype).view(layout.integer)  # float16 and bfloat16 widen exactly
    field = bits & layout.exponent_mask
    # NaN and +-Inf (all-ones exponent) -> +0: the mask is all ones below that exponent, 0 at it.
    y = (bits & ((field - layout.exponent_mask) >> (8 * dtype.itemsize - 1))).view(dtype)

    if isinstance(fmt, DualFormat):
        negative = _binades(fmt.negative, high=0.0)
        positive = _binades(fmt.positive, low=0.0)
        halves = (negative, positive)
        is_positive = y > 0
        spacing = torch.where(is_positive, _spacing_bits(field, positive, layout), _spacing_bits(field, negative, layout))
        low, high = negative.low, positive.high
    else:
        b = _binades(fmt)
        halves = (b,)
        spacing = None if isinstance(fmt, IntFormat) else _spacing_bits(field, b, layout)
        low, high = b.low, b.high

    if spacing is None:
        steps = y
    else:
        inverse = (2 * layout.bias << layout.mantissa_bits) - spacing  # 2**-k from the bits of 2**k
        steps = y * inverse.view(dtype)

    coded = [h for h in halves if h.exponent_coded_bias is not None]
    if tie == "even" and coded:
        # No mantissa: a tie at 1.5 steps lies between 2**e and 2**(e + 1), whose codes differ in the last bit
        # of the exponent field; round() alone would always pick the larger one.
        if len(halves) == 1:
            field_even = _even_exponent_field(field, halves[0], layout)
        else:  # a dual format: a half with a mantissa never has a tie at 1.5 steps that needs the exponent
            even = [_even_exponent_field(field, h, layout) if h.exponent_coded_bias is not None else False for h in halves]
            field_even = torch.where(is_positive, even[1], even[0])
        rounded = torch.where((steps.abs() == 1.5) & field_even, steps.sign(), torch.round(steps))
        rounded = (rounded + 1) - 1  # -0 -> +0 (round_to_integer says why)
    else:
        # With a mantissa (or an integer grid), a code's last bit is the parity of its step count, so
        # round-half-even on the step count is round-half-to-even-code.
        rounded = round_to_integer(steps, tie)
    out = rounded if spacing is None else rounded * spacing.view(dtype)
    return out.clamp(low, high)  # saturate; zeros are +0 already
