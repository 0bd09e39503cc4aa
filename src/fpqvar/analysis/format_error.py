"""Quantization error of tensors under different formats (paper Fig. 2b and Fig. 5a)."""

from __future__ import annotations

import torch

from ..formats import Format, get_format
from ..quant import Granularity, PerGroup, Tie, fake_quantize


def quantization_mse(
    x: torch.Tensor, fmt: Format | str, granularity: Granularity = PerGroup(128), tie: Tie = "even"
) -> float:
    """Mean of (x - Q(x))**2, computed in float64."""
    return float((fake_quantize(x, fmt, granularity, tie).double() - x.double()).pow(2).mean())


def blockwise_quantization_mse(
    weights: list[torch.Tensor],
    formats: dict[str, Format | str],
    granularity: Granularity = PerGroup(128),
    tie: Tie = "even",
) -> dict[str, list[float]]:
    """For each labelled format, the quantization MSE of each block's tensor."""
    return {label: [quantization_mse(w, get_format(f), granularity, tie) for w in weights] for label, f in formats.items()}


def stand_in_weights(depth: int, seed: int = 0, degrees_of_freedom: int = 4) -> list[torch.Tensor]:
    """Synthetic QKV-projection-shaped weights (3C x C, C = 64 * depth) for use before a real checkpoint.

    Student-t entries (heavy tails, like trained transformer weights) with a block-dependent spread.
    They are NOT VAR weights: anything computed from them must be labelled as a stand-in.
    """
    width = 64 * depth
    g = torch.Generator().manual_seed(seed)
    out = []
    for block in range(depth):
        normal = torch.randn(3 * width, width, generator=g)
        # Student-t with integer nu: a normal over the root mean square of nu further normals.
        chi = torch.randn(degrees_of_freedom, 3 * width, width, generator=g).pow(2).mean(0).sqrt()
        out.append(normal / chi * 0.02 * (1 + block / depth))
    return out
