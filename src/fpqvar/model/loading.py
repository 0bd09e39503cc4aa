"""Load and save VAR and VQVAE checkpoints: official `.pth` state dicts unchanged, or `.safetensors`.

Models are built on the meta device and take the checkpoint's tensors by assignment, so loading a d30
costs the file's memory once. Loading is strict: any missing, unexpected or wrong-shaped key is an error
that lists them all and says what the file looks like.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections import Counter
from dataclasses import fields

import torch
from torch import nn

from ..checkpoints import load_state_dict
from .config import RELEASED_VAR, VARConfig, VQVAEConfig
from .var import VAR
from .vqvae import VQVAE

CONFIG_METADATA_KEY = "fpqvar_config"
RECIPE_METADATA_KEY = "fpqvar_recipe"  # a quantized VAR: rebuilt by fpqvar.methods before its tensors load
PACKED_METADATA_KEY = "fpqvar_packed"  # a packed quantized VAR (4-bit codes + scales): read by fpqvar.lowbit


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not fit the model it is loaded into."""


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


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise one CheckpointMismatchError listing every missing, unexpected and wrong-shaped key."""
    expected = model.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = [f"{source} does not fit this model."]
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong)):
            if items:
                shown = "; ".join(items[:20]) + (f"; ... ({len(items) - 20} more)" if len(items) > 20 else "")
                parts.append(f"{len(items)} {title}: {shown}.")
        parts.append(describe_state_dict(state))
        raise CheckpointMismatchError(" ".join(parts))


def _assign(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    check_state_dict(model, state, source)
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


def _metadata(path: pathlib.Path) -> dict[str, str]:
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def config_from_metadata(path: pathlib.Path, cls, key: str = CONFIG_METADATA_KEY):
    """The ``cls`` configuration stored under ``key`` in a `.safetensors` file's metadata, or None."""
    text = _metadata(path).get(key)
    if text is None:
        return None
    raw = json.loads(text)
    names = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names})


def _as_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Half-precision tensors widened (exactly) to float32: every model loads in float32, as the official files
    are, whatever precision a file stores (our embedded model ships fp16); autocast then picks the matmul dtype."""
    return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()}


def load_var(path: str | pathlib.Path, config: VARConfig | None = None, device: str | torch.device = "cpu") -> VAR:
    """A VAR from `var_d*.pth` (official) or `.safetensors`, in float32; the configuration is read off the keys
    unless given."""
    path = pathlib.Path(path)
    if path.is_file() and PACKED_METADATA_KEY in _metadata(path):  # hook until the dispatching loader (fpqvar.loading) takes it
        from ..lowbit.checkpoint import load_packed_var

        return load_packed_var(path, device=device)
    state = _as_float32(load_state_dict(path, device))
    config = config or config_from_metadata(path, VARConfig)
    recipe = _metadata(path).get(RECIPE_METADATA_KEY)
    if recipe is not None:
        from ..methods.apply import quantized_var_from_state_dict

        return quantized_var_from_state_dict(state, config, json.loads(recipe), source=str(path))
    return var_from_state_dict(state, config, source=str(path))


def load_vae(path: str | pathlib.Path, config: VQVAEConfig | None = None, device: str | torch.device = "cpu",
             patch_nums: tuple[int, ...] | None = None) -> VQVAE:
    """A VQVAE from `vae_ch160v4096z32.pth` (official) or `.safetensors`; ``patch_nums`` sets its scale list
    (pass the VAR's: the same 256-px VAE file serves d36's 512-px scales). Float32, like `load_var`."""
    path = pathlib.Path(path)
    state = _as_float32(load_state_dict(path, device))
    config = config or config_from_metadata(path, VQVAEConfig) or VQVAEConfig()
    if patch_nums is not None:
        config = dataclasses.replace(config, patch_nums=tuple(patch_nums))
    return vae_from_state_dict(state, config, source=str(path))


def save_safetensors(
    model: VAR | VQVAE, path: str | pathlib.Path, dtype: torch.dtype | None = None, metadata: dict[str, str] | None = None
) -> None:
    """Write a model's state dict (optionally cast, floating tensors only) with its configuration as metadata."""
    from safetensors.torch import save_file

    from ..atomic import atomic_path

    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    metadata = {CONFIG_METADATA_KEY: json.dumps(model.config.to_dict()), **(metadata or {})}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
