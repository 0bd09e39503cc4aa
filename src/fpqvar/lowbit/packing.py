"""Two 4-bit codes per byte: element 2j in the low nibble, element 2j + 1 in the high nibble (little-endian
nibble order, as the OCP MX spec packs FP4), along the last dimension."""

from __future__ import annotations

import torch


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """(..., K) uint8 codes in 0..15 -> (..., K / 2) uint8 bytes."""
    if codes.dtype != torch.uint8:
        raise TypeError(f"4-bit codes must be uint8, got {codes.dtype}")
    if codes.shape[-1] % 2:
        raise ValueError(f"the last dimension ({codes.shape[-1]}) must be even to pack two codes per byte")
    if codes.numel() and codes.device.type != "meta" and int(codes.max()) > 15:
        raise ValueError(f"4-bit codes must lie in 0..15, found {int(codes.max())}")
    pairs = codes.reshape(*codes.shape[:-1], codes.shape[-1] // 2, 2)
    return pairs[..., 0] | (pairs[..., 1] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """(..., K / 2) uint8 bytes -> (..., K) uint8 codes in 0..15; the inverse of :func:`pack_nibbles`."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed codes must be uint8, got {packed.dtype}")
    return torch.stack((packed & 0x0F, packed >> 4), dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)
