"""Where the project's committed data lives."""

from __future__ import annotations

import os
import pathlib


def data_dir() -> pathlib.Path:
    """The repository's `data/` folder, or `$FPQVAR_DATA` when set (for a non-editable install)."""
    configured = os.environ.get("FPQVAR_DATA")
    path = pathlib.Path(configured) if configured else pathlib.Path(__file__).resolve().parents[2] / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"the fpqvar data folder {path} does not exist; install from a clone (`pip install -e .`) "
            "or point FPQVAR_DATA at the repository's data/ folder"
        )
    return path


EMBEDDED_FILES = {"vqvae": "vqvae.safetensors", "var": "var.safetensors", "classifier": "classifier.safetensors"}


def embedded_dir() -> pathlib.Path:
    """`data/embedded/`: the embedded default model, its classifier, manifest, logs and measured quality."""
    return data_dir() / "embedded"


def resolve_checkpoint(value: str | os.PathLike, kind: str) -> pathlib.Path:
    """A checkpoint path, or the name ``embedded`` for the committed embedded model's ``kind`` file
    (``var``, ``vqvae`` or ``classifier``)."""
    if str(value) != "embedded":
        return pathlib.Path(value)
    path = embedded_dir() / EMBEDDED_FILES[kind]
    if not path.is_file():
        raise FileNotFoundError(f"the embedded {kind} checkpoint {path} is missing; re-create it with `nox -s embedded`")
    return path
