"""Quantizers as pure functions on tensors: rounding, granularity, fake and real quantization."""

from .granularity import Granularity, PerChannel, PerGroup, PerTensor, PerToken, as_groups, scale_shape
from .numerics import RELEASED_NUMERICS, Numerics, ScaleDtype, as_numerics
from .quantize import QuantizedTensor, compiled_fake_quantize, dequantize, fake_quantize, fake_quantize_ste, quantize
from .rounding import TIES, Tie, round_to_format, round_to_integer

__all__ = [
    "Granularity", "PerChannel", "PerGroup", "PerTensor", "PerToken", "as_groups", "scale_shape",
    "QuantizedTensor", "dequantize", "fake_quantize", "fake_quantize_ste", "compiled_fake_quantize", "quantize",
    "RELEASED_NUMERICS", "Numerics", "ScaleDtype", "as_numerics",
    "TIES", "Tie", "round_to_format", "round_to_integer",
]
