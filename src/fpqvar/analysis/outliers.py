"""Outlier channels of layer inputs across generation steps (paper Challenge 3, Fig. 4)."""

from __future__ import annotations

import torch


def channel_absmax_per_step(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(K, C): for each step's (N, L_k, C) input, the largest |x| of each channel over samples and tokens."""
    return torch.stack([t.reshape(-1, t.shape[-1]).abs().amax(0) for t in tensors])


def tokens_per_step(tensors: list[torch.Tensor]) -> list[int]:
    """Rows of each step's input: samples x 2 (CFG runs the conditional and unconditional halves) x tokens."""
    return [t.shape[0] * t.shape[1] for t in tensors]


def top_channels(absmax: torch.Tensor, k: int) -> list[list[int]]:
    """For each step (row of ``absmax``), its ``k`` channels of largest magnitude, largest first."""
    if not 1 <= k <= absmax.shape[-1]:
        raise ValueError(f"k must be between 1 and the channel count {absmax.shape[-1]}, got {k}")
    return absmax.topk(k, dim=-1).indices.tolist()


def overlap_matrix(channel_sets: list[list[int]]) -> torch.Tensor:
    """(K, K): the share of step i's top channels that are also among step j's (|A_i & A_j| / |A_i|)."""
    sets = [set(s) for s in channel_sets]
    return torch.tensor([[len(a & b) / len(a) for b in sets] for a in sets], dtype=torch.float64)


def outlier_ratio(absmax: torch.Tensor) -> torch.Tensor:
    """(K,): each step's largest channel magnitude over its median channel magnitude."""
    return absmax.amax(-1) / absmax.median(-1).values
