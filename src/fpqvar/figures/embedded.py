"""Figures of the embedded default model: training curves and image grids."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def training_curves(logs: dict[str, list[dict]], metrics: dict[str, str]):
    """One panel per stage: its ``metrics[stage]`` against the step (log scale for losses)."""
    fig, axes = plt.subplots(1, len(logs), figsize=(3.4 * len(logs), 2.8))
    for ax, (stage, rows) in zip(np.atleast_1d(axes), logs.items(), strict=True):
        key = metrics[stage]
        ax.plot([r["step"] for r in rows], [r[key] for r in rows], lw=0.8)
        ax.set_yscale("log" if "loss" in key or "recon" in key else "linear")
        ax.set_title(f"{stage}: {key}", fontsize=9)
        ax.set_xlabel("step")
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, labels: np.ndarray, per_class: int, title: str):
    """A row per class, ``per_class`` uint8 (H, W, 3) images per row, in the order given."""
    classes = sorted(set(labels.tolist()))
    fig, axes = plt.subplots(len(classes), per_class, figsize=(0.6 * per_class, 0.6 * len(classes)), squeeze=False)
    for row, c in enumerate(classes):
        picked = images[labels == c][:per_class]
        for col in range(per_class):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(picked):
                ax.imshow(picked[col])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
