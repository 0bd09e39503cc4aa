"""Models from checkpoint specs: the one loader the command line and the notebooks call.

A spec is ``"embedded"`` (the committed embedded model, `data/embedded/`) or a path: an official `.pth`, a
plain `.safetensors`, or a quantized `.safetensors` written by `fpqvar quantize` (its recipe is in the
metadata; `--packed` files hold 4-bit codes and go to `fpqvar.lowbit`). Plain files go to `fpqvar.model.loading`, quantized ones to `fpqvar.methods`, which rebuilds their
quantized layers. Every model loads in float32 on ``device``.
"""

from __future__ import annotations

import os

import torch

from .checkpoints import PACKED_METADATA_KEY, RECIPE_METADATA_KEY, read_metadata
from .lowbit import load_packed_var
from .methods.apply import load_quantized_var
from .model import VAR, VQVAE
from .model import loading as plain
from .paths import resolve_checkpoint

Spec = str | os.PathLike


def load_var(spec: Spec, *, device: str | torch.device = "cpu") -> VAR:
    """The VAR of ``spec``, full-precision or quantized, as the file says."""
    path = resolve_checkpoint(spec, "var")
    metadata = read_metadata(path)
    if PACKED_METADATA_KEY in metadata:
        return load_packed_var(path, device=device)
    if RECIPE_METADATA_KEY in metadata:
        return load_quantized_var(path, device=device)
    return plain.load_var(path, device=device)


def load_vae(spec: Spec, *, device: str | torch.device = "cpu", patch_nums: tuple[int, ...] | None = None) -> VQVAE:
    """The VQVAE of ``spec``; ``patch_nums`` sets its scale list (pass the VAR's: one 256-px VAE file serves
    d36's 512-px scales too)."""
    return plain.load_vae(resolve_checkpoint(spec, "vqvae"), device=device, patch_nums=patch_nums)


def load_var_and_vae(var: Spec, vae: Spec, *, device: str | torch.device = "cpu") -> tuple[VAR, VQVAE]:
    """A VAR and the VQVAE that decodes it, with the VAR's scales."""
    model = load_var(var, device=device)
    return model, load_vae(vae, device=device, patch_nums=model.patch_nums)
