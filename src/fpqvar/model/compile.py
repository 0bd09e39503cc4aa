"""Optional `torch.compile` of the parts of sampling that are bound by memory traffic or kernel count.

The compiled pieces compute the same operations; fusion only changes when intermediate values are
written, so results match eager mode to float rounding (dtypes of every step are kept).
"""

from __future__ import annotations

import torch

from .var import VAR
from .vqvae import VQVAE


def compile_for_sampling(var: VAR, vae: VQVAE, *, whole_blocks: bool = True, channels_last: bool = True) -> None:
    """Fuse the decoder's GroupNorm/SiLU/casts with its convolutions, and the elementwise work of each block.

    ``whole_blocks``: compile each transformer block (two fused regions around the KV store, which stays
    eager), else only its LayerNorm modulation. ``channels_last``: decoder weights in NHWC before compiling
    (faster compiled, slower eager: measured in benchmarks/README.md, "The decoder in NHWC").
    With ``VAR.generate(..., cuda_graphs=True)`` the blocks' guard checks run only at capture; without
    graphs they cost more than they save at batch 1 (see benchmarks/README.md).

    All blocks share one compiled code. Shapes start static and become dynamic where they change (dynamo's
    automatic dynamic shapes): the token count after the first step, the batch after a new batch size, while
    the width stays static, so reductions over channels (LayerNorm, the quantizers' groups) compile to
    single-pass kernels. About six variants per model (first step's single token or more; one batch or
    several; with or without autocast's weight cache, which graph capture turns off); dynamo keeps at most
    8 (``recompile_limit``) and then runs the blocks eagerly, so call ``torch._dynamo.reset()`` between
    models in one process.
    """
    var.release_cuda_graphs()  # graphs captured before replay the uncompiled code
    if channels_last:
        vae.decoder.to(memory_format=torch.channels_last)
    vae.decoder = torch.compile(vae.decoder, dynamic=False)
    for block in var.blocks:
        if whole_blocks:
            # One compiled code for all blocks (the same code with the same shapes). Rounding every intermediate
            # to its eager dtype keeps quantizers' fp16/bf16 scale arithmetic as in eager mode.
            block.compile(options={"emulate_precision_casts": True})
        else:
            block.modulate = torch.compile(block.modulate, dynamic=True)
