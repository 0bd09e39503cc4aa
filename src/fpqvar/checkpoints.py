"""Checkpoint files, whatever model they hold: reading them safely, checking them strictly, writing them atomically.

`.safetensors`, or `.pth` state dicts read with `weights_only=True`. A `.safetensors` file written by
`save_safetensors` carries its model's configuration (and, for a quantized VAR, its recipe) as metadata.
This module knows no model: `fpqvar.model.loading` builds plain VAR/VQVAE models from these files,
`fpqvar.methods` quantized ones, and `fpqvar.loading` picks between them.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import fields

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path

CONFIG_METADATA_KEY = "fpqvar_config"
RECIPE_METADATA_KEY = "fpqvar_recipe"  # a quantized VAR: only fpqvar.methods can rebuild its layers


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not fit the model it is loaded into."""


def _existing(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; supply the file (e.g. var_d30.pth from the official VAR release)"
        )
    return path


def load_state_dict(path: str | pathlib.Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, never unpickling arbitrary objects."""
    path = _existing(path)
    if path.suffix == ".safetensors":
        return load_file(str(path), device=str(device))
    state = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a plain state dict of tensors (name -> tensor)")
    return state


def read_metadata(path: str | pathlib.Path) -> dict[str, str]:
    """A `.safetensors` file's metadata; ``{}`` for a `.pth` file, which has none."""
    path = _existing(path)
    if path.suffix != ".safetensors":
        return {}
    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def config_from_metadata(path: str | pathlib.Path, cls, key: str = CONFIG_METADATA_KEY):
    """The ``cls`` configuration stored under ``key`` in a `.safetensors` file's metadata, or None."""
    text = read_metadata(path).get(key)
    if text is None:
        return None
    raw = json.loads(text)
    names = {f.name for f in fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in names})


def as_float32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Half-precision tensors widened (exactly) to float32: every model loads in float32, as the official files
    are, whatever precision a file stores (our embedded model ships fp16); autocast then picks the matmul dtype."""
    return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()}


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str, *, hint: str = "") -> None:
    """Raise one CheckpointMismatchError listing every missing, unexpected and wrong-shaped key; ``hint`` (what
    the file looks like) ends the message."""
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
        if hint:
            parts.append(hint)
        raise CheckpointMismatchError(" ".join(parts))


def save_safetensors(
    model: nn.Module,
    path: str | pathlib.Path,
    *,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
    config_key: str = CONFIG_METADATA_KEY,
) -> None:
    """Write a model's state dict (floating tensors optionally cast to ``dtype``) with its configuration
    (``model.config.to_dict()``) as metadata under ``config_key``, atomically."""
    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    metadata = {config_key: json.dumps(model.config.to_dict()), **(metadata or {})}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)


def block_weights(state: dict[str, torch.Tensor], layer: str = "attn.mat_qkv") -> list[torch.Tensor]:
    """``blocks.{i}.<layer>.weight`` for every block i, in block order."""
    prefix, suffix = "blocks.", f".{layer}.weight"
    found = {int(k[len(prefix) : -len(suffix)]): v for k, v in state.items() if k.startswith(prefix) and k.endswith(suffix)}
    if not found:
        raise KeyError(f"no key of the form blocks.<i>{suffix} in this state dict; is it a VAR checkpoint?")
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise KeyError(f"blocks {missing} have no {layer} weight")
    return [found[i] for i in range(len(found))]
