"""Quantized linear layers: weights fake-quantized once offline, input activations online, outputs in high precision.

An optional input transform T (GALT's lambda and a Hadamard rotation, paper Eq. 4-5) is applied to the
activation inside the layer, and its inverse is folded into the weight offline:
    y = Q(T(x)) Q(W')^T + b,   T(x) = (x * lambda) R,   W' = (W / lambda) R,
so that with no quantization y = x W^T + b exactly (R orthogonal). The layer replaces mat_qkv / fc1, whose
only input is the AdaLN-modulated activation, so T acts right after the modulation, as in the paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..quant import Granularity, PerGroup, Tie, compiled_fake_quantize
from ..rotation import Rotation


@dataclass(frozen=True)
class OperandQuant:
    """How one operand of a matmul is quantized: a format (by name) and a granularity."""

    fmt: str
    granularity: Granularity = PerGroup(128)

    def __call__(self, x: torch.Tensor, tie: Tie) -> torch.Tensor:
        return compiled_fake_quantize(x, self.fmt, self.granularity, tie)


class InputTransform(nn.Module):
    """x -> (x * lambda) R, with R a full C x C rotation or one G x G block applied to each group of G channels.

    ``scale_online=False`` is for a lambda already folded into the AdaLN weights (paper Eq. 6): the input
    arrives multiplied by lambda, so only the weight is divided by it.
    """

    graph_capturable = True

    def __init__(
        self,
        width: int,
        rotation: Rotation | None = None,
        scale: torch.Tensor | None = None,
        *,
        scale_online: bool = True,
    ):
        super().__init__()
        if rotation is not None and not isinstance(rotation, Rotation):
            raise TypeError(f"rotation must be a Rotation module (shared between layers), got {type(rotation).__name__}")
        if rotation is not None and width % rotation.order:
            raise ValueError(f"width {width} is not divisible by the rotation's order {rotation.order}")
        if scale is not None and scale.shape != (width,):
            raise ValueError(f"lambda must have shape ({width},), got {tuple(scale.shape)}")
        self.width, self.scale_online = width, scale_online
        self.rotation = rotation
        self.register_buffer("scale", None if scale is None else scale.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is not None and self.scale_online:
            x = x * self.scale
        if self.rotation is not None:
            x = self.rotation(x)
        return x

    def fold_into_weight(self, weight: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """W' = (W / lambda) R along the input dimension, computed in float64. ``scale`` stands in for the
        stored lambda (GALT learns it through this function: differentiable; lambda may carry leading
        dimensions of stacked weights)."""
        scale = self.scale if scale is None else scale
        w = weight.double()
        if scale is not None:
            w = w / scale.double()
        if self.rotation is not None:
            w = self.rotation(w)
        return w.to(weight.dtype)


class QuantizedLinear(nn.Module):
    """A drop-in replacement for nn.Linear with fake-quantized weight and input (either may be None = high precision)."""

    graph_capturable = True  # fused quantizers: no host synchronisation, no branch on values

    def __init__(
        self,
        linear: nn.Linear,
        weight_quant: OperandQuant | None,
        input_quant: OperandQuant | None,
        transform: InputTransform | None = None,
        tie: Tie = "even",
    ):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_quant, self.input_quant, self.tie = weight_quant, input_quant, tie
        self.transform = transform
        with torch.no_grad():
            weight = linear.weight.detach()
            if transform is not None:
                weight = transform.fold_into_weight(weight)
            if weight_quant is not None:
                weight = weight_quant(weight, tie)
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.transform is not None:
            x = self.transform(x)
        if self.input_quant is not None:
            x = self.input_quant(x, self.tie)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, weight={self.weight_quant}, input={self.input_quant}, "
            f"transform={'yes' if self.transform is not None else 'no'}, tie={self.tie}"
        )
