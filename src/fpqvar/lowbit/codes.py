"""Codes and scales of weights that are already fake-quantized (a quantized layer's), exact on any device."""

from __future__ import annotations

import torch

from ..formats import FloatFormat, Format, get_format
from ..quant import Numerics, PerGroup, QuantizedTensor, Tie, as_groups, as_numerics, round_to_format, scale_shape


def recover_codes(fake: torch.Tensor, fmt: Format | str, group_size: int, tie: Tie | Numerics = "even") -> QuantizedTensor:
    """Codes and scales of an already fake-quantized tensor (a quantized layer's weight), exact on any device.

    Quantizing ``fake`` again need not give back its scale: max|fake| = RN(max_value * s), and RN(that / max_value)
    can land one ulp off s. The true s lies within about one ulp of max|fake| / max_value, so each group tries that
    quotient and its float32 neighbours and keeps the first whose codes dequantize (levels * s in float32, as
    ``dequantize``) back to ``fake`` bit for bit. A group no candidate reproduces is an error (the tensor was not fake-quantized so).
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
    return QuantizedTensor(codes=fmt.encode(levels).to(torch.uint8).reshape(fake.shape), scale=scale.to(fake.dtype).reshape(shape),
                           fmt=fmt, granularity=PerGroup(group_size), dtype=fake.dtype)
