"""Reading checkpoints safely: `.safetensors`, or `.pth` state dicts with `weights_only=True`."""

from __future__ import annotations

import pathlib

import torch


def load_state_dict(path: str | pathlib.Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, never unpickling arbitrary objects."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; supply the file (e.g. var_d30.pth from the official VAR release)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=str(device))
    state = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} is not a plain state dict of tensors (name -> tensor)")
    return state


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
