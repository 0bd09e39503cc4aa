"""Figures of the results chapter: sample grids per recipe (paper Fig. 9 / 10) and the layer-wise error map."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import torch

from ..generation import to_uint8
from ..methods import Recipe, quantize_model
from ..model import VAR, VQVAE


def recipe_images(var: VAR, vae: VQVAE, recipe: Recipe, lambdas: dict | None, classes: list[int], seed: int,
                  amp_dtype: torch.dtype | None = None, **sampling) -> np.ndarray:
    """One image per class from a quantized copy of ``var``, all in one batch seeded ``seed``: every recipe draws
    with the same random numbers, so the grids differ only by what quantization changes."""
    quantized = quantize_model(copy.deepcopy(var), recipe, lambdas)
    device = var.pos_1LC.device
    autocast = torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)
    with torch.inference_mode(), autocast:
        images = quantized.generate(vae, len(classes), labels=torch.tensor(classes, device=device), seed=seed, **sampling)
    return to_uint8(images)


def grid_figure(images: dict[str, np.ndarray], classes: list[int], title: str):
    """Rows: recipes; columns: classes."""
    import matplotlib.pyplot as plt

    rows, columns = len(images), len(classes)
    fig, axes = plt.subplots(rows, columns, figsize=(1.1 * columns + 1.6, 1.1 * rows + 0.4), squeeze=False)
    for r, (name, batch) in enumerate(images.items()):
        for c in range(columns):
            axes[r, c].imshow(batch[c])
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(str(classes[c]), fontsize=8)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def layer_errors_frame(rows: list[dict], value: str = "sqnr_db") -> pd.DataFrame:
    """Layers x recipes: each quantized layer's mean ``value`` over the steps (from the rows' layer reports)."""
    columns = {r["recipe_name"]: {e["layer"]: e[value] for e in r["layer_errors"]} for r in rows if r["layer_errors"]}
    frame = pd.DataFrame(columns)
    order = sorted(frame.index, key=lambda n: (int(n.split(".")[1]), n.split(".", 2)[2]))
    return frame.loc[order]


def layer_error_heatmap(frame: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * frame.shape[1], 0.6 + 0.22 * frame.shape[0]))
    sns.heatmap(frame.astype(float), ax=ax, cmap="viridis", cbar_kws={"label": "SQNR (dB), higher is better"})
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
