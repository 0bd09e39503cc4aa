"""Group-wise Hadamard transform unit (paper Sec. IV-B, GHTU of Fig. 7c; rtl/src/ght.v): the FHT of every group
of 2**log2n channels of a token, group by group, in exact integer arithmetic."""

from __future__ import annotations

import torch

from .fht import fht, fht_latency


def ght(x: torch.Tensor, log2n: int) -> torch.Tensor:
    """What the ght unit outputs for integer tokens x (..., C): the FHT of every group of 2**log2n channels."""
    x = torch.as_tensor(x).to(torch.int64)
    n = 1 << log2n
    if x.shape[-1] % n:
        raise ValueError(f"the channel count {x.shape[-1]} is not a multiple of the GHT group size {n}")
    return fht(x.reshape(*x.shape[:-1], -1, n)).reshape(x.shape)


def ght_latency(log2n: int) -> int:
    """One group's edges through the unit: the FHT's (groups follow one per edge)."""
    return fht_latency(log2n)
