"""Precision for inference: storage dtype of the linear weights, and the dtype autocast computes in."""

from __future__ import annotations

import torch
from torch import nn


def cast_linear_weights(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Store every nn.Linear weight and bias in ``dtype`` (e.g. bf16), leaving embeddings and the rest fp32.

    Under ``torch.autocast(dtype=dtype)`` this changes no result: autocast casts fp32 linear weights to
    ``dtype`` at every call anyway. It only stops re-reading and re-casting them at every generation step.
    The residual stream, LayerNorm and the embeddings stay fp32, as in the original inference.
    """
    for module in model.modules():
        # nn.Linear, and drop-in replacements of it (quantized linears): their weight and bias only
        if isinstance(module, nn.Linear) or hasattr(module, "in_features"):
            for name in ("weight", "bias"):
                parameter = getattr(module, name, None)
                if parameter is not None:
                    parameter.data = parameter.data.to(dtype)
    return model


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype autocast runs matmuls in on ``device_type``, or None when autocast is off there."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
