"""Measurements on tensors and models: quantization error by format, layer and block."""

from .format_error import blockwise_quantization_mse, quantization_mse, stand_in_weights

__all__ = ["blockwise_quantization_mse", "quantization_mse", "stand_in_weights"]
