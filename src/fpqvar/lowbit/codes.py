"""Real quantization on any device. ``fpqvar.quant.quantize`` keeps each format's code tables on the CPU, so it
fails on CUDA tensors (searchsorted across devices); these run the quantizer's own scale and rounding rules
where the tensor lives and look codes up in the tables copied to that device. (Once fpqvar.quant's tables
follow the tensor's device, ``quantize_tensor`` reduces to ``quantize``.)"""

from __future__ import annotations

import dataclasses

import torch

from ..formats import Format, get_format
from ..quant import Granularity, PerGroup, QuantizedTensor, Tie, as_groups, quantize, scale_shape
from ..quant.quantize import _quantize_groups  # the quantizer's scale and rounding rules, not a copy of them


def encode_levels(levels: torch.Tensor, fmt: Format) -> torch.Tensor:
    """uint8 code of each grid value in ``levels`` (any device); a value off the grid is an error."""
    grid = fmt.grid  # sorted distinct finite values, float64
    table = fmt.encode(grid)  # their codes (+0 for zero), on the CPU: 16 entries for FP4
    flat = levels.reshape(-1).to(torch.float64)
    index = torch.searchsorted(grid.to(flat.device), flat).clamp(max=grid.numel() - 1)
    if not bool((grid.to(flat.device)[index] == flat).all()):
        raise ValueError(f"values off the grid of {fmt.name}; round them first (fpqvar.quant.round_to_format)")
    return table.to(flat.device)[index].to(torch.uint8).reshape(levels.shape)


def decode_codes(codes: torch.Tensor, fmt: Format) -> torch.Tensor:
    """Value (float32) of each code, on the codes' device."""
    return fmt.values_by_code.to(device=codes.device, dtype=torch.float32)[codes.long()]


def quantize_tensor(x: torch.Tensor, fmt: Format | str, granularity: Granularity = PerGroup(128),
                    tie: Tie = "even") -> QuantizedTensor:
    """``fpqvar.quant.quantize`` computed on x's device (equal to it on the CPU)."""
    fmt = get_format(fmt)
    if x.device.type == "cpu":
        return quantize(x, fmt, granularity, tie)
    levels, scale, negative_scale, zero_point = _quantize_groups(as_groups(x, granularity), fmt, tie)
    shape = scale_shape(x.shape, granularity)
    return QuantizedTensor(
        codes=encode_levels(levels, fmt).reshape(x.shape), scale=scale.reshape(shape), fmt=fmt,
        granularity=granularity, dtype=x.dtype,
        negative_scale=None if negative_scale is None else negative_scale.reshape(shape),
        zero_point=None if zero_point is None else zero_point.reshape(shape),
    )


def dequantize_tensor(q: QuantizedTensor) -> torch.Tensor:
    """``fpqvar.quant.dequantize`` on the codes' device (the product runs on the CPU: its rules, its tables)."""
    if q.codes.device.type == "cpu":
        return q.dequantize()
    cpu = dataclasses.replace(q, **{f.name: getattr(q, f.name).cpu() for f in dataclasses.fields(q)
                                    if isinstance(getattr(q, f.name), torch.Tensor)})
    return cpu.dequantize().to(q.codes.device)
