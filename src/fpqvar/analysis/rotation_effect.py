"""What a full (HT) and a group-wise (GHT) Hadamard rotation do to a layer input (paper Sec. IV-B, Fig. 6)."""

from __future__ import annotations

import torch

from ..rotation import Rotation, orthogonal_hadamard
from .activations import kurtosis


def rotations(width: int, group: int = 128, seed: int | None = None) -> dict[str, Rotation]:
    """The inputs as the recipes' rotations see them: none, HT (C x C) and GHT (one G x G block per group)."""
    return {"none": Rotation(torch.eye(width)), "HT": Rotation(orthogonal_hadamard(width, seed)),
            "GHT": Rotation(orthogonal_hadamard(group, seed))}


@torch.no_grad()
def group_statistics(x: torch.Tensor, group: int = 128) -> list[dict[str, float]]:
    """Per group of ``group`` consecutive channels of x (..., C): max|x| / median|x| and the kurtosis of its values."""
    width = x.shape[-1]
    if width % group:
        raise ValueError(f"width {width} is not divisible by the group size {group}")
    rows = []
    for g in range(width // group):
        values = x[..., g * group : (g + 1) * group].double()
        magnitude = values.abs()
        rows.append({"group": g, "max/median": float(magnitude.max() / magnitude.median()), "kurtosis": kurtosis(values)})
    return rows
