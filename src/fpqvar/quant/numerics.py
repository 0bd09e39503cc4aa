"""How a quantizer rounds and in which dtype it computes: ours by default, each option the released code's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..formats import Format, IntFormat, get_format
from .rounding import Tie, check_tie

ScaleDtype = Literal["float32", "input"]
ASYMMETRIC_MIN_RANGE = 1e-5  # the released code's floor on an asymmetric INT row's max - min (ours too)


@dataclass(frozen=True)
class Numerics:
    """Rounding and arithmetic of the quantizers (``methods/README.md`` compares them with the released code).

    * ``tie``: ties of the FP and dual formats (grid formats); ``int_tie``: ties of the INT formats, symmetric
      and asymmetric (None: ``tie``). The released code rounds INT ties to even (``torch.round``) and grid
      ties up (its CUDA kernel).
    * ``scale_dtype``: where the scale and x / s are computed. ``"float32"`` (ours; float64 for a float64
      input): a float16 scale underflows (fp16 input, FP8-E5M2 and absmax below ~1.7e-3 gave 0) and loses
      bits when subnormal, and a low-precision x / s rounds twice. ``"input"``: in the input's dtype, as the
      released code does for its fp16 activations (bit-exact with it).
    * ``int_absmax_floor``: symmetric INT scales use max(absmax, floor). The released code floors at 1e-5,
      which only changes groups whose absmax is below 1e-5 (they quantize coarser); ours is 0 (no floor).
    """

    tie: Tie = "even"
    int_tie: Tie | None = None
    scale_dtype: ScaleDtype = "float32"
    int_absmax_floor: float = 0.0

    def __post_init__(self) -> None:
        check_tie(self.tie)
        if self.int_tie is not None:
            check_tie(self.int_tie)
        if self.scale_dtype not in ("float32", "input"):
            raise ValueError(f"scale_dtype must be 'float32' or 'input', got {self.scale_dtype!r}")
        if not self.int_absmax_floor >= 0:
            raise ValueError(f"int_absmax_floor must be a number >= 0, got {self.int_absmax_floor!r}")

    def tie_for(self, fmt: Format | str) -> Tie:
        """The tie mode of ``fmt``'s family."""
        if isinstance(get_format(fmt), IntFormat) and self.int_tie is not None:
            return self.int_tie
        return self.tie


# What the released code does (fpqvar-official-behaviour.md sections 1.4, 2.1, 2.4).
RELEASED_NUMERICS = Numerics(tie="up", int_tie="even", scale_dtype="input", int_absmax_floor=1e-5)


def as_numerics(tie: Tie | Numerics) -> Numerics:
    """A tie mode alone means that mode for every format, with the other defaults."""
    return tie if isinstance(tie, Numerics) else Numerics(tie=tie)
