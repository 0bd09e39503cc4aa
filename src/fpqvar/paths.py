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
