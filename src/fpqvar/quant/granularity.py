"""Which elements share one scale. Every granularity groups along the last dimension."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PerTensor:
    """One scale for the whole tensor."""


@dataclass(frozen=True)
class PerChannel:
    """One scale per output channel of a weight (out, in): a row of the last dimension."""


@dataclass(frozen=True)
class PerToken:
    """One scale per token of an activation (..., C): a row of the last dimension."""


@dataclass(frozen=True)
class PerGroup:
    """One scale per run of ``group_size`` consecutive elements of the last dimension."""

    group_size: int = 128

    def __post_init__(self) -> None:
        if self.group_size < 1:
            raise ValueError(f"group_size must be a positive integer, got {self.group_size}")


Granularity = PerTensor | PerChannel | PerToken | PerGroup


def as_groups(x: torch.Tensor, granularity: Granularity) -> torch.Tensor:
    """View ``x`` as (number of scales, elements per scale)."""
    if isinstance(granularity, PerTensor):
        return x.reshape(1, -1)
    if x.dim() == 0:
        raise ValueError(f"{granularity} needs a tensor with at least one dimension; use PerTensor()")
    width = x.shape[-1]
    if isinstance(granularity, (PerChannel, PerToken)):
        return x.reshape(math.prod(x.shape[:-1]), width)  # not -1: an empty last dimension leaves it ambiguous
    if isinstance(granularity, PerGroup):
        if width % granularity.group_size:
            raise ValueError(
                f"the last dimension ({width}) is not divisible by the group size "
                f"({granularity.group_size}); choose a group size that divides {width}"
            )
        return x.reshape(-1, granularity.group_size)
    raise TypeError(f"unknown granularity {granularity!r}; use PerTensor, PerChannel, PerToken or PerGroup")


def scale_shape(shape: torch.Size, granularity: Granularity) -> tuple[int, ...]:
    """Shape of the scale tensor for a tensor of ``shape``: the last dim becomes the number of scales."""
    if isinstance(granularity, PerTensor):
        return (1,)
    if isinstance(granularity, PerGroup):
        return (*shape[:-1], shape[-1] // granularity.group_size)
    return (*shape[:-1], 1)
