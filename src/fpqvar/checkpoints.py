"""Reading checkpoints safely: `.safetensors`, or `.pth` state dicts with `weights_only=True`."""

from __future__ import annotations

import pathlib
import pickle
import warnings

import torch

from .errors import UserInputError


def load_state_dict(path: str | pathlib.Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, never unpickling arbitrary objects; every tensor checked finite.

    A file that cannot be read as one (a folder, a truncated or corrupt file, a pickle holding code or other
    objects, a non-finite tensor) raises `UserInputError` with one line that says so."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise UserInputError(f"checkpoint {path} is a directory; give the checkpoint file inside it")
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; supply the file (e.g. var_d30.pth from the official VAR release)"
        )
    if path.suffix in (".npy", ".npz"):
        raise UserInputError(f"{path} is a NumPy file, not a checkpoint; give a .pth state dict or a .safetensors file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

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
