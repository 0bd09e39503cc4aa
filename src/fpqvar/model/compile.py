"""Optional `torch.compile` of the parts of sampling that are bound by memory traffic or kernel count.

The compiled pieces compute the same operations; fusion only changes when intermediate values are
written, so results match eager mode to float rounding (dtypes of every step are kept).
"""

from __future__ import annotations

import torch

from .var import VAR
from .vqvae import VQVAE


def compile_for_sampling(var: VAR, vae: VQVAE) -> None:
    """Fuse the decoder's GroupNorm/SiLU/casts with its convolutions, and each block's LayerNorm modulation.

    Pays off at large batches (H200, d30, batch 64: 57 -> 64 img/s); at batch 1 the per-call guard
    checks cost more than they save (see benchmarks/README.md).
    """
    vae.decoder = torch.compile(vae.decoder, dynamic=False)
    for block in var.blocks:
        block.modulate = torch.compile(block.modulate, dynamic=True)
