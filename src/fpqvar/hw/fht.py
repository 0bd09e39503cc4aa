"""Fast Hadamard transform unit (rtl/src/fht.v): natural-order Sylvester H x in exact integer arithmetic.

The hardware computes the unnormalised transform; GHT's 1/sqrt(N) (or the 1/N of x W^T = (xH)(WH)^T / N) is
folded into the offline weight transform, and the per-group absmax quantizer after it is scale-invariant.
"""

from __future__ import annotations

import torch


def fht(x: torch.Tensor) -> torch.Tensor:
    """y = H x along the last dimension (a power of two), stage by stage as the RTL's butterflies (int64)."""
    y = torch.as_tensor(x).to(torch.int64).clone()
    n = y.shape[-1]
    if n & (n - 1):
        raise ValueError(f"the transform length must be a power of two, got {n}")
    h = 1
    while h < n:
        pairs = y.reshape(*y.shape[:-1], n // (2 * h), 2, h)
        low, high = pairs[..., 0, :], pairs[..., 1, :]
        y = torch.stack((low + high, low - high), dim=-2).reshape(y.shape)
        h *= 2
    return y


def output_width(input_width: int, length: int) -> int:
    """Bits per output lane: one bit of growth per stage."""
    return input_width + length.bit_length() - 1


def fht_latency(log2n: int) -> int:
    """Edges from a vector in to its transform out: one registered butterfly stage per bit."""
    return log2n
