"""The low-bit backend: QuantizedLinear layers swapped for LowBitLinear, which runs the same quantized
arithmetic for real (FP4 codes as FP8 E4M3 on the tensor cores, per-group scales applied per K-group).

``backend="fake"`` is a model as loaded (fake-quantized, the reference); :func:`to_lowbit` makes it
``backend="lowbit"`` in place. Layers the kernels do not cover stay fake-quantized and are listed.
"""

from __future__ import annotations

import torch
from torch import nn

from ..formats import DualFormat, FloatFormat, get_format
from ..methods.layers import QuantizedLinear
from ..model.hooks import replace_module
from ..quant import PerGroup, as_numerics
from .checkpoint import packable_weight, quantize_layer_weight
from .kernels import (
    GROUP,
    blockwise_scaled_mm,
    group_scaled_gemm,
    quantize_activation,
    repeat_groups,
    require_triton,
    supported_activation_format,
)
from .packing import pack_nibbles

BACKENDS = ("fake", "lowbit")
GEMMS = ("scaled_mm", "triton")  # torch._scaled_mm blockwise (default: fastest measured), or fpqvar's Triton GEMM


def lowbit_blocker(layer: QuantizedLinear) -> str | None:
    """Why a quantized linear cannot run on the low-bit kernels (None when it can)."""
    if not packable_weight(layer) or layer.weight_quant.granularity != PerGroup(GROUP):
        return f"its weight is not an FP4 format with groups of {GROUP}"
    if not isinstance(get_format(layer.weight_quant.fmt), FloatFormat):
        return "its weight has a dual format"
    q = layer.input_quant
    if q is None or q.granularity != PerGroup(GROUP) or not supported_activation_format(q.fmt):
        return f"its input is not quantized to FP4 (or dual FP4) with groups of {GROUP}"
    numerics = as_numerics(layer.tie)
    if numerics.tie_for(q.fmt) != "even" or numerics.tie_for(layer.weight_quant.fmt) != "even":
        return f"ties {numerics.tie!r}: the kernels round half to even"
    if numerics.scale_dtype != "float32":
        return "scales computed in the input dtype (released arithmetic): the kernels compute them in float32"
    return None


class LowBitLinear(nn.Module):
    """y = dequant(Q(T(x))) dequant(W)^T + b computed as FP8 tensor-core dots of the codes, scaled per group.

    Activations: one Triton pass (GHT fused when T is a 128-point GHT and autocast is bf16, as the fake path's
    rotation runs) -> E4M3 codes + float32 scales. ``gemm="scaled_mm"`` (default, the fastest measured):
    weights as E4M3 bytes through ``torch._scaled_mm`` with 1x128 block scales, a DFQ input as one GEMM over a
    doubled K. ``gemm="triton"``: fpqvar's group-scaled GEMM, reading E2M1 weights packed two per byte
    (``pack_e2m1``) and multiplying one weight tile by both DFQ parts. Weight scales float32 (K / 128, N).
    """

    graph_capturable = True  # fixed kernels for fixed shapes, nothing read back on the host

    def __init__(self, layer: QuantizedLinear, *, gemm: str = "scaled_mm", pack_e2m1: bool = True):
        super().__init__()
        blocker = lowbit_blocker(layer)
        if blocker is not None:
            raise ValueError(f"this layer cannot run low-bit: {blocker}")
        if gemm not in GEMMS:
            raise ValueError(f"gemm must be one of {GEMMS}, got {gemm!r}")
        require_triton()
        self.in_features, self.out_features, self.gemm = layer.in_features, layer.out_features, gemm
        self.input_format = get_format(layer.input_quant.fmt).name
        weight_format = get_format(layer.weight_quant.fmt)
        q = quantize_layer_weight(layer)
        scales = q.scale.float().t().contiguous()  # (K / 128, N)
        self.packed = gemm == "triton" and pack_e2m1 and weight_format.name == "fp4_e2m1"
        if self.packed:
            weight = pack_nibbles(q.codes)
        else:
            weight = weight_format.decode(q.codes).float().to(torch.float8_e4m3fn)
            if gemm == "scaled_mm" and isinstance(get_format(self.input_format), DualFormat):
                weight, scales = repeat_groups(weight, scales)  # DFQ as one GEMM over a doubled K
        self.register_buffer("weight_codes", weight.contiguous())
        self.register_buffer("weight_scales", scales)
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())
        self.transform = layer.transform
        rotation = None if self.transform is None else self.transform.rotation
        self.fusable_rotation = rotation is not None and rotation.order == GROUP
        self.register_buffer("rotation_bf16", rotation.matrix.to(torch.bfloat16) if self.fusable_rotation else None,
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, self.in_features)
        autocast = torch.is_autocast_enabled("cuda")
        if autocast and torch.get_autocast_dtype("cuda") != torch.bfloat16:
            # the fake quantizer would round scales and x / s to fp16 there; the kernel emulates bf16 and fp32 only
            raise ValueError("the low-bit backend runs under bf16 autocast (or none); use --dtype bf16 / torch.bfloat16")
        autocast_bf16 = autocast
        rotation = None
        if self.transform is not None:
            if self.fusable_rotation and autocast_bf16:
                t = self.transform
                if t.scale is not None and t.scale_online:
                    x = x * t.scale
                rotation = self.rotation_bf16
            else:
                x = self.transform(x)
        codes, scales = quantize_activation(x, self.input_format, rotation)
        out_dtype = torch.bfloat16 if autocast_bf16 else x.dtype
        if self.gemm == "scaled_mm":
            out = blockwise_scaled_mm(codes, scales, self.weight_codes, self.weight_scales, x.shape[0], self.bias,
                                      out_dtype=out_dtype)
        else:
            out = group_scaled_gemm(codes, scales, self.weight_codes, self.weight_scales, x.shape[0], self.bias,
                                    packed_b=self.packed, out_dtype=out_dtype)
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, input={self.input_format}, "
                f"gemm={self.gemm}, weight={'packed e2m1' if self.packed else 'e4m3 bytes'}, fused_ght={self.fusable_rotation}")


def to_lowbit(var: nn.Module, *, gemm: str = "scaled_mm", pack_e2m1: bool = True) -> dict[str, str]:
    """Swap (in place) every quantized linear the kernels cover for a LowBitLinear. Returns the layers left
    fake-quantized, with the reason. The model must be on a CUDA device."""
    require_triton()
    if var.pos_1LC.device.type != "cuda":
        raise ValueError("the low-bit backend runs on a CUDA GPU; move the model there first (or use backend='fake')")
    left = {}
    for name, module in list(var.named_modules()):
        if isinstance(module, QuantizedLinear):
            blocker = lowbit_blocker(module)
            if blocker is None:
                replace_module(var, name, LowBitLinear(module, gemm=gemm, pack_e2m1=pack_e2m1))
            else:
                left[name] = blocker
    return left


def use_backend(var: nn.Module, backend: str) -> dict[str, str]:
    """Select the backend of a loaded quantized VAR: "fake" (as loaded) or "lowbit" (see :func:`to_lowbit`)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "fake":
        if any(isinstance(m, LowBitLinear) for m in var.modules()):
            raise ValueError("this VAR already runs low-bit layers; load it again for the fake backend")
        return {}
    return to_lowbit(var)
