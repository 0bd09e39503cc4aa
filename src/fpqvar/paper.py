"""The paper's published numbers (data/paper/*.csv), to print next to ours."""

from __future__ import annotations

from .paths import data_dir

SOURCE = "FPQVAR paper (arXiv 2505.16335), as published"


def load_table(name: str):
    """A transcribed table of the paper as a pandas DataFrame, e.g. ``load_table("table1_fp4_encodings")``."""
    import pandas as pd

    path = data_dir() / "paper" / f"{name}.csv"
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.csv"))
        raise FileNotFoundError(f"no paper table {name!r} at {path}; known tables: {known}")
    return pd.read_csv(path, dtype={"code": str})
