"""Checkpoint files, whatever model they hold: reading them safely, checking them strictly, writing them atomically.

`.safetensors`, or `.pth` state dicts read with `weights_only=True`. A `.safetensors` file written by
`save_safetensors` carries its model's configuration (and, for a quantized VAR, its recipe) as metadata.
This module knows no model: `fpqvar.model.loading` builds plain VAR/VQVAE models from these files,
`fpqvar.methods` quantized ones, and `fpqvar.loading` picks between them.
"""

from __future__ import annotations

import json
import pathlib
import pickle
import warnings
from dataclasses import fields

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import atomic_path
from .errors import UserInputError

CONFIG_METADATA_KEY = "fpqvar_config"
RECIPE_METADATA_KEY = "fpqvar_recipe"  # a quantized VAR: only fpqvar.methods can rebuild its layers
PACKED_METADATA_KEY = "fpqvar_packed"  # a packed quantized VAR (4-bit codes + scales): read by fpqvar.lowbit


class CheckpointMismatchError(ValueError):
    """A checkpoint whose keys or shapes do not fit the model it is loaded into."""


def _existing(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if path.is_dir():
        raise UserInputError(f"checkpoint {path} is a directory; give the checkpoint file inside it")
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; supply the file (e.g. var_d30.pth from the official VAR release)"
        )
    return path


def load_state_dict(path: str | pathlib.Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, never unpickling arbitrary objects; every tensor checked finite.

    A file that cannot be read as one (a folder, a truncated or corrupt file, a pickle holding code or other
    objects, a non-finite tensor) raises `UserInputError` with one line that says so."""
    path = _existing(path)
    if path.suffix in (".npy", ".npz"):
        raise UserInputError(f"{path} is a NumPy file, not a checkpoint; give a .pth state dict or a .safetensors file")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path), device=str(device))
        except SafetensorError as error:
            raise UserInputError(f"{path} is not a readable .safetensors file (truncated or corrupt: {error})") from None
    else:
        try:
            with warnings.catch_warnings():  # torch's advice on pickle protocols is not the user's business: we say what failed
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError as error:
            if "global" not in str(error).lower():  # not a refused class or function: bytes that are no pickle
                raise UserInputError(f"{path} cannot be read as a plain state dict: it is corrupt, or it pickles objects "
                                     "that fpqvar never unpickles; save model.state_dict() with torch.save") from None
            raise UserInputError(
                f"{path} is not a plain state dict of tensors: it holds other pickled objects, and fpqvar never "
                "unpickles code; save model.state_dict() (or convert the file to .safetensors)"
            ) from None
        except Exception as error:  # noqa: BLE001 - whatever torch.load fails with, the file is not a checkpoint
            raise UserInputError(
                f"{path} cannot be read as a PyTorch checkpoint (truncated or not a checkpoint: {type(error).__name__})"
            ) from None
    if not isinstance(state, dict):
        raise UserInputError(f"{path} holds a {type(state).__name__}, not a state dict of tensors (name -> tensor)")
    others = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise UserInputError(f"{path} is not a plain state dict of tensors (name -> tensor): {others[:3]} are not "
                             "tensors; save the model's state_dict() itself")
    check_finite(state, str(path))
    return state


def read_metadata(path: str | pathlib.Path) -> dict[str, str]:
    """A `.safetensors` file's metadata; ``{}`` for a `.pth` file, which has none."""
    path = _existing(path)
    if path.suffix != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except SafetensorError as error:
        raise UserInputError(f"{path} is not a readable .safetensors file (truncated or corrupt: {error})") from None


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


MASK_SUFFIXES = ("attn_bias_for_masking",)  # VAR's causal mask buffer: -inf above the block diagonal, by design


def check_finite(state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse a state dict with a NaN or infinite value (one reduction per floating tensor), naming the tensor:
    a NaN weight would otherwise quantize to 0 or give an all-zero channel, silently. Attention-mask buffers may
    hold -inf (and nothing else non-finite)."""
    for key, tensor in state.items():
        if not tensor.is_floating_point() or tensor.device.type == "meta":
            continue
        if key.endswith(MASK_SUFFIXES):
            bad = tensor.isnan() | (tensor == float("inf"))
        else:
            bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            raise UserInputError(f"{source}: tensor {key} has {int(bad.sum())} NaN or infinite values; the checkpoint "
                                 "is damaged (re-download or re-create it)")


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
