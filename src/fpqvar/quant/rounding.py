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


def _power_of_two(exponent: torch.Tensor) -> torch.Tensor:
    """2**exponent as float32, exactly, for integer exponents in the normal float32 range."""
    return ((exponent + _FP32_BIAS) << _FP32_MANTISSA_BITS).view(torch.float32)


def _round_float(y: torch.Tensor, fmt: FloatFormat, tie: Tie) -> torch.Tensor:
    magnitude = y.abs()
    # Unbiased float32 exponent = floor(log2 |y|); values below the format's smallest normal
    # binade (its subnormals) share that binade's spacing, values above its top binade saturate.
    binade = ((magnitude.view(torch.int32) >> _FP32_MANTISSA_BITS) - _FP32_BIAS).clamp(
        fmt.min_exponent, fmt.max_exponent
    )
    steps = magnitude * _power_of_two(fmt.mantissa_bits - binade)  # |y| / spacing, exact
    low = steps.floor()
    frac = steps - low
    if tie == "even":
        if fmt.mantissa_bits > 0:
            low_code_odd = low.remainder(2) == 1  # the code's last bit is the mantissa's last bit
        else:
            # No mantissa: neighbours are 2**binade (exponent field binade + bias) and the next
            # power of two; the code's last bit is the exponent field's. Below the normals the
            # only neighbours are 0 (code 0) and the smallest normal (field 1).
            low_code_odd = (low == 1) & ((binade + fmt.bias).remainder(2) == 1)
        up_on_tie = low_code_odd
    elif tie == "up":
        up_on_tie = y > 0
    else:
        up_on_tie = y < 0
    steps = low + ((frac > 0.5) | ((frac == 0.5) & up_on_tie)).to(low.dtype)
    rounded = (steps * _power_of_two(binade - fmt.mantissa_bits)).clamp(max=fmt.max_value)
    return torch.where(y < 0, -rounded, rounded)


def round_to_integer(y: torch.Tensor, tie: Tie = "even") -> torch.Tensor:
    """Nearest integer (unbounded), ties as ``tie``; float32 in and out."""
    _check_tie(tie)
    if tie == "even":
        return torch.round(y)
    if tie == "up":
        return torch.floor(y + 0.5)
    return torch.ceil(y - 0.5)


def round_to_format(y: torch.Tensor, fmt: Format, tie: Tie = "even") -> torch.Tensor:
    """Nearest grid value of ``fmt`` to each element of ``y`` (which is already divided by its scale).

    Returns float32. For a :class:`DualFormat`, ``y <= 0`` rounds on the negative format's
    non-positive half and ``y > 0`` on the positive format's non-negative half.
    """
    _check_tie(tie)
    y = y.to(torch.float32)
    y = torch.where(torch.isfinite(y), y, 0.0)
    if isinstance(fmt, DualFormat):
        negative = round_to_format(y, fmt.negative, tie).clamp(max=0.0)
        positive = round_to_format(y, fmt.positive, tie).clamp(min=0.0)
        return torch.where(y > 0, positive, negative)
    if isinstance(fmt, IntFormat):
        return round_to_integer(y, tie).clamp(fmt.min_value, fmt.max_value)
    if isinstance(fmt, FloatFormat):
        return _round_float(y, fmt, tie)
    raise TypeError(f"round_to_format takes a FloatFormat, IntFormat or DualFormat, not {type(fmt).__name__}")
