"""Round already-scaled values to the nearest value of a format's grid, in closed form.

No scan over the grid: the spacing of the binade each value falls in is read off its float32
exponent bits, so rounding is a handful of elementwise ops that fuse into one kernel under
``torch.compile``. Values beyond the grid saturate to its ends; NaN and +-Inf become 0, as in
the released CUDA kernel.

Ties (a value exactly between two grid points) follow ``tie``:
  * ``"even"``: the neighbour whose bit code is even (round-half-to-even, the OCP MX rule);
  * ``"up"``:   toward +inf, what the released ``quant_cuda`` kernel does (last grid entry wins);
  * ``"down"``: toward -inf, what the released pure-PyTorch argmin fallback does (first entry wins).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..formats import DualFormat, FloatFormat, Format, IntFormat

Tie = Literal["even", "up", "down"]
TIES: tuple[str, ...] = ("even", "up", "down")

_FP32_MANTISSA_BITS = 23
_FP32_BIAS = 127


def _check_tie(tie: str) -> None:
    if tie not in TIES:
        raise ValueError(f"tie must be one of {TIES}, got {tie!r}")


def round_to_integer(y: torch.Tensor, tie: Tie = "even") -> torch.Tensor:
    """Nearest integer (unbounded), ties as ``tie``."""
    _check_tie(tie)
    if tie == "even":
        return torch.round(y)
    if tie == "up":
        return torch.floor(y + 0.5)
    return torch.ceil(y - 0.5)


def _power_of_two(biased_exponent: torch.Tensor) -> torch.Tensor:
    """2**(biased_exponent - 127) as float32, exactly, for biased exponents in 1..254."""
    return (biased_exponent << _FP32_MANTISSA_BITS).view(torch.float32)


@dataclass(frozen=True)
class _Binades:
    """What rounding needs of a grid: float32 exponent fields of its lowest and highest binade,
    mantissa bits (the steps per binade are 2**mantissa_bits), and the clamp range."""

    min_field: int
    max_field: int
    mantissa_bits: int
    exponent_bias: int
    low: float
    high: float


def _binades(fmt: FloatFormat | IntFormat) -> _Binades:
    if isinstance(fmt, IntFormat):
        # Integers are one binade with spacing 1: field 128 with one mantissa bit gives 2**(128-127-1).
        return _Binades(128, 128, 1, 0, fmt.min_value, fmt.max_value)
    return _Binades(
        fmt.min_exponent + _FP32_BIAS, fmt.max_exponent + _FP32_BIAS, fmt.mantissa_bits, fmt.bias,
        fmt.min_value, fmt.max_value,
    )


# Grids with at most this many binade boundaries find each value's binade by comparing |y| with
# those powers of two (float-only, vectorizes well on CPU); wider ones (FP8) read the exponent bits.
_MAX_THRESHOLDS = 8


def _spacing(y: torch.Tensor, b: _Binades) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Grid spacing around each y (a power of two) and, for a grid without mantissa bits, whether the
    exponent field of the grid value just below |y| is even (what round-half-to-even-code needs)."""
    low, high = b.min_field - _FP32_BIAS, b.max_field - _FP32_BIAS  # unbiased exponents of the end binades
    m = b.mantissa_bits
    if high - low <= _MAX_THRESHOLDS:
        magnitude = y.abs()
        spacing = torch.full_like(y, 2.0 ** (low - m))
        passed = torch.zeros_like(y) if m == 0 else None
        for exponent in range(low + 1, high + 1):
            above = magnitude >= 2.0**exponent
            spacing = torch.where(above, 2.0 ** (exponent - m), spacing)
            if passed is not None:
                passed = passed + above
        field_even = None if passed is None else (passed + (low + b.exponent_bias)).remainder(2) == 0
        return spacing, field_even
    # The float32 exponent field of y is floor(log2|y|) + 127; clamp it to the grid's binades.
    field = ((y.view(torch.int32) >> _FP32_MANTISSA_BITS) & 0xFF).clamp(b.min_field, b.max_field)
    field_even = None if m else (field - _FP32_BIAS + b.exponent_bias).remainder(2) == 0
    return _power_of_two(field - m), field_even


def _round_on_binades(y: torch.Tensor, b: _Binades, tie: Tie, negative: _Binades | None = None) -> torch.Tensor:
    """Round on ``b``'s grid; with ``negative``, values y <= 0 round on that grid instead (dual formats)."""
    spacing, field_even = _spacing(y, b)
    low, high = b.low, b.high
    if negative is not None:
        negative_spacing, negative_field_even = _spacing(y, negative)
        positive = y > 0
        spacing = torch.where(positive, spacing, negative_spacing)
        if field_even is not None or negative_field_even is not None:
            # a half with a mantissa never has a tie at 1.5 steps that needs the exponent: mark it odd
            field_even = torch.where(
                positive,
                False if field_even is None else field_even,
                False if negative_field_even is None else negative_field_even,
            )
        low, high = negative.low, b.high
    steps = y / spacing  # exact: spacing is a power of two
    if tie == "even" and field_even is not None:
        # No mantissa: a tie at 1.5 steps lies between 2**binade and 2**(binade + 1), whose codes differ
        # in the exponent field's last bit; round() alone would always pick the larger one.
        steps = torch.where((steps.abs() == 1.5) & field_even, steps.sign(), torch.round(steps))
    else:
        # With a mantissa, a code's last bit is the parity of its step count, so round-half-even on
        # the step count is round-half-to-even-code.
        steps = round_to_integer(steps, tie)
    return torch.clamp(steps * spacing, min=low, max=high)


def round_to_format(y: torch.Tensor, fmt: Format, tie: Tie = "even") -> torch.Tensor:
    """Nearest grid value of ``fmt`` to each element of ``y`` (which is already divided by its scale).

    Returns float32. For a :class:`DualFormat`, ``y <= 0`` rounds on the negative format's
    non-positive half and ``y > 0`` on the positive format's non-negative half.
    """
    _check_tie(tie)
    y = y.to(torch.float32)
    y = torch.where(y.abs() < math.inf, y, 0.0)  # NaN, +-Inf -> 0 (a compare vectorizes; isnan does not on CPU)
    if isinstance(fmt, DualFormat):
        negative = dataclasses.replace(_binades(fmt.negative), high=0.0)
        positive = dataclasses.replace(_binades(fmt.positive), low=0.0)
        return _round_on_binades(y, positive, tie, negative)
    if isinstance(fmt, (FloatFormat, IntFormat)):
        return _round_on_binades(y, _binades(fmt), tie)
    raise TypeError(f"round_to_format takes a FloatFormat, IntFormat or DualFormat, not {type(fmt).__name__}")
