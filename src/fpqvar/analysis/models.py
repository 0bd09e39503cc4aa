"""The one place where chapters load their models: ``var`` / ``vae`` specs ("embedded" or a checkpoint path).

Every notebook calls :func:`load_models`, so a change of the project's loader is a change here only.
"""

from __future__ import annotations

import torch

from ..loading import load_var, load_var_and_vae
from ..model.var import VAR
from ..model.vqvae import VQVAE

EMBEDDED = "embedded"


class DeviceUnavailableError(RuntimeError):
    """A chapter was asked to run on a device this machine does not have."""


def require_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device, or one clear error when this machine cannot run on it."""
    try:
        dev = torch.device(device)
    except RuntimeError as error:
        raise DeviceUnavailableError(f"device {device!r} is not a torch device ({error}); pass -p device cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {device!r} is not available on this machine (no CUDA); pass -p device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise DeviceUnavailableError(
            f"device {device!r} is not available: this machine has {torch.cuda.device_count()} CUDA device(s)"
        )
    if dev.type not in ("cpu", "cuda"):
        raise DeviceUnavailableError(f"device {device!r} is not supported by the chapters; pass -p device cpu or cuda")
    return dev


def is_embedded(spec: str) -> bool:
    return str(spec) == EMBEDDED


def load_models(var: str, vae: str, *, device: str | torch.device = "cpu") -> tuple[VAR, VQVAE]:
    """The VAR and VQVAE named by ``var`` and ``vae`` (each "embedded" or a checkpoint path), on ``device``,
    the VQVAE on the VAR's scale list; quantized VAR files load too (`fpqvar.loading`)."""
    dev = require_device(device)
    return load_var_and_vae(var, vae, device=dev)


def load_var_only(var: str, *, device: str | torch.device = "cpu") -> VAR:
    """The VAR alone, for chapters that read its weights only."""
    return load_var(var, device=require_device(device))


def checkpoint_label(spec: str, kind: str) -> str:
    """A deterministic label of one checkpoint spec (file name, no folders), for titles and printed output."""
    return f"embedded {kind}" if is_embedded(spec) else str(spec).replace("\\", "/").rsplit("/", 1)[-1]


def describe_models(var: str, vae: str) -> str:
    return f"{checkpoint_label(var, 'VAR')} + {checkpoint_label(vae, 'VQVAE')}"
