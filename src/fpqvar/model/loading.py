"""Load plain (full-precision) VAR and VQVAE checkpoints: official `.pth` state dicts unchanged, or `.safetensors`.

Quantized VARs are rebuilt by `fpqvar.methods.load_quantized_var`; `fpqvar.loading` picks the right loader
for any file. Models are built on the meta device and take the checkpoint's tensors by assignment, so loading a d30
costs the file's memory once. Loading is strict: any missing, unexpected or wrong-shaped key is an error
that lists them all and says what the file looks like.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections import Counter

import torch
from torch import nn

from ..checkpoints import (
    RECIPE_METADATA_KEY,
    CheckpointMismatchError,
    as_float32,
    check_state_dict,
    config_from_metadata,
    load_state_dict,
    read_metadata,
)
from .config import RELEASED_VAR, VARConfig, VQVAEConfig
from .var import VAR
from .vqvae import VQVAE


def infer_var_config(state: dict[str, torch.Tensor]) -> VARConfig:
    """The VAR configuration a state dict was saved from, read off its keys and shapes."""
    required = ("pos_1LC", "lvl_1L", "class_emb.weight", "word_embed.weight", "head.weight", "blocks.0.attn.scale_mul_1H11")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointMismatchError(f"not a VAR checkpoint: no {', '.join(missing)}. {describe_state_dict(state)}")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    C = state["pos_1LC"].shape[-1]
    counts = Counter(state["lvl_1L"].reshape(-1).tolist()) if state["lvl_1L"].device.type != "meta" else None
    patch_nums = _patch_nums_from_length(state["pos_1LC"].shape[1]) if counts is None else tuple(
        math.isqrt(counts[k]) for k in sorted(counts)
    )
    return VARConfig(
        depth=depth,
        width=None if C == 64 * depth else C,
        heads=None if state["blocks.0.attn.scale_mul_1H11"].shape[1] == C // 64 else state["blocks.0.attn.scale_mul_1H11"].shape[1],
        patch_nums=patch_nums,
        vocab_size=state["head.weight"].shape[0],
        latent_channels=state["word_embed.weight"].shape[1],
        num_classes=state["class_emb.weight"].shape[0] - 1,
        shared_aln="shared_ada_lin.1.weight" in state,
        mlp_ratio=state["blocks.0.ffn.fc1.weight"].shape[0] / C,
    )


def _patch_nums_from_length(L: int) -> tuple[int, ...]:
    for cfg in RELEASED_VAR.values():
        if cfg.num_tokens == L:
            return cfg.patch_nums
    raise CheckpointMismatchError(f"cannot tell the patch numbers of a {L}-token VAR without its lvl_1L values")


def describe_state_dict(state: dict[str, torch.Tensor]) -> str:
    """A one-line guess at what a state dict is, for error messages."""
    if "encoder.conv_in.weight" in state and "quantize.embedding.weight" in state:
        vocab, Cvae = state["quantize.embedding.weight"].shape
        return f"It looks like a VQVAE (vocabulary {vocab}, {Cvae} latent channels)."
    blocks = {k.split(".")[1] for k in state if k.startswith("blocks.") and k.split(".")[1].isdigit()}
    if blocks and "pos_1LC" in state:
        depth, (_, L, C) = len(blocks), state["pos_1LC"].shape
        released = [n for n, c in RELEASED_VAR.items() if c.depth == depth and c.num_tokens == L and c.C == C]
        shared = ", shared AdaLN" if "shared_ada_lin.1.weight" in state else ""
        name = f"the released VAR-{released[0]}" if released else "a VAR"
        return f"It looks like {name} (depth {depth}, width {C}, {L} tokens{shared})."
    return f"It does not look like a VAR or VQVAE checkpoint ({len(state)} keys)."


def _assign(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    check_state_dict(model, state, source, hint=describe_state_dict(state))
    model.load_state_dict(state, strict=True, assign=True)
    return model


def var_from_state_dict(state: dict[str, torch.Tensor], config: VARConfig | None = None, source: str = "state dict") -> VAR:
    config = config or infer_var_config(state)
    with torch.device("meta"):
        model = VAR(config)
    model = _assign(model, state, source)
    if model.lvl_1L.device.type != "meta":
        with torch.device(model.lvl_1L.device):
            expected = VAR._levels(config.patch_nums)
        if not torch.equal(model.lvl_1L, expected):
            raise CheckpointMismatchError(f"{source}: its lvl_1L buffer does not match patch_nums {config.patch_nums}")
    return model.eval()


def vae_from_state_dict(state: dict[str, torch.Tensor], config: VQVAEConfig | None = None, source: str = "state dict") -> VQVAE:
    config = config or VQVAEConfig()
    with torch.device("meta"):
        model = VQVAE(config)
    key = "quantize.ema_vocab_hit_SV"
    if key in state:  # before the shape check: a file made for another scale list is fine
        state = {**state, key: model.quantize.hit_counts_for(state[key])}
    return _assign(model, state, source).eval()


def load_var(path: str | pathlib.Path, config: VARConfig | None = None, device: str | torch.device = "cpu") -> VAR:
    """A full-precision VAR from `var_d*.pth` (official) or `.safetensors`, in float32; the configuration is read
    off the keys unless given. A quantized file is refused: its layers are not a plain VAR's."""
    path = pathlib.Path(path)
    recipe = read_metadata(path).get(RECIPE_METADATA_KEY)
    if recipe is not None:
        raise CheckpointMismatchError(
            f"{path} is a quantized VAR (recipe {json.loads(recipe).get('name')}); load it with "
            "fpqvar.loading.load_var, which rebuilds its quantized layers"
        )
    state = as_float32(load_state_dict(path, device))
    config = config or config_from_metadata(path, VARConfig)
    return var_from_state_dict(state, config, source=str(path))


def load_vae(path: str | pathlib.Path, config: VQVAEConfig | None = None, device: str | torch.device = "cpu",
             patch_nums: tuple[int, ...] | None = None) -> VQVAE:
    """A VQVAE from `vae_ch160v4096z32.pth` (official) or `.safetensors`; ``patch_nums`` sets its scale list
    (pass the VAR's: the same 256-px VAE file serves d36's 512-px scales). Float32, like `load_var`."""
    path = pathlib.Path(path)
    state = as_float32(load_state_dict(path, device))
    config = config or config_from_metadata(path, VQVAEConfig) or VQVAEConfig()
    if patch_nums is not None:
        config = dataclasses.replace(config, patch_nums=tuple(patch_nums))
    return vae_from_state_dict(state, config, source=str(path))
