"""Real quantization on any device. ``fpqvar.quant.quantize`` keeps each format's code tables on the CPU, so it
fails on CUDA tensors (searchsorted across devices); these run the quantizer's own scale and rounding rules
where the tensor lives and look codes up in the tables copied to that device. (Once fpqvar.quant's tables
follow the tensor's device, ``quantize_tensor`` reduces to ``quantize``.)"""

from __future__ import annotations

import dataclasses

import torch

from ..formats import FloatFormat, Format, get_format
from ..quant import (
    Granularity,
    Numerics,
    PerGroup,
    QuantizedTensor,
    Tie,
    as_groups,
    as_numerics,
    quantize,
    round_to_format,
    scale_shape,
)
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
                    tie: Tie | Numerics = "even") -> QuantizedTensor:
    """``fpqvar.quant.quantize`` computed on x's device (equal to it on the CPU)."""
    fmt = get_format(fmt)
    if x.device.type == "cpu":
        return quantize(x, fmt, granularity, tie)
    levels, scale, negative_scale, zero_point = _quantize_groups(as_groups(x, granularity), fmt, as_numerics(tie))
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


def recover_codes(fake: torch.Tensor, fmt: Format | str, group_size: int, tie: Tie | Numerics = "even") -> QuantizedTensor:
    """Codes and scales of an already fake-quantized tensor (a quantized layer's weight), exact on any device.

    Quantizing ``fake`` again need not give back its scale: max|fake| = RN(max_value * s), and RN(that / max_value)
    (or times fp32(1 / max_value), as CUDA kernels compute a division by a scalar) can land one ulp off s. The
    true s lies within about one ulp of max|fake| / max_value, so each group tries that quotient and its float32
    neighbours and keeps the first whose codes dequantize (levels * s in float32, as ``dequantize``) back to
    ``fake`` bit for bit. A group no candidate reproduces is an error (the tensor was not fake-quantized so).
    """
    fmt = get_format(fmt)
    if not isinstance(fmt, FloatFormat):
        raise ValueError(f"recover_codes takes a single-scale float format, not {fmt.name}")
    tie = as_numerics(tie).tie_for(fmt)
    rows = as_groups(fake, PerGroup(group_size)).float()
    base = rows.abs().amax(-1, keepdim=True) / torch.tensor(fmt.max_value, device=rows.device)  # IEEE division
    scale, levels = torch.zeros_like(base), torch.zeros_like(rows)
    candidates = [base, torch.nextafter(base, base.new_tensor(0.0)), torch.nextafter(base, base.new_tensor(float("inf")))]
    for _ in range(2):  # and one more ulp either side
        candidates += [torch.nextafter(candidates[-2], base.new_tensor(0.0)), torch.nextafter(candidates[-1], base.new_tensor(float("inf")))]
    pending = torch.arange(rows.shape[0], device=rows.device)  # groups without a scale yet: usually none after the first
    for candidate in candidates:
        if not pending.numel():
            break
        group, s = rows[pending], candidate[pending]
        trial = round_to_format(group / s, fmt, tie)
        ok = ((trial * s).to(fake.dtype).float() == group).all(-1)
        scale[pending[ok]], levels[pending[ok]] = s[ok], trial[ok]
        pending = pending[~ok]
    if pending.numel():
        raise ValueError(f"{pending.numel()} groups of a {tuple(fake.shape)} tensor are not {fmt.name} codes times one "
                         "scale; was it fake-quantized with another format or cast after quantization?")
    shape = scale_shape(fake.shape, PerGroup(group_size))
    return QuantizedTensor(codes=encode_levels(levels, fmt).reshape(fake.shape), scale=scale.to(fake.dtype).reshape(shape),
                           fmt=fmt, granularity=PerGroup(group_size), dtype=fake.dtype)
