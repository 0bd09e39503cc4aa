"""Fig. 2 of the paper: weight distribution with format levels, and per-block quantization error."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def weight_histogram_with_levels(weights: torch.Tensor, levels: dict[str, torch.Tensor], title: str):
    """Fig. 2a: a 100-bin histogram of ``weights`` with each format's quantization levels as lines."""
    fig, axes = plt.subplots(len(levels), 1, figsize=(7, 2.4 * len(levels)), sharex=True)
    values = weights.detach().float().reshape(-1).numpy()
    for ax, (label, grid) in zip(axes, levels.items(), strict=True):
        ax.hist(values, bins=100, color="tab:blue", alpha=0.7, log=True)
        for level in grid.tolist():
            ax.axvline(level, color="tab:red", lw=0.8, alpha=0.8)
        ax.set_ylabel("count (log)")
        ax.set_title(f"{label}: {len(grid)} levels", fontsize=10)
    axes[-1].set_xlabel("weight value")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def blockwise_error(errors: dict[str, list[float]], title: str, ylabel: str = "quantization MSE"):
    """Fig. 2b / Fig. 5a: one line per format across blocks."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for label, values in errors.items():
        ax.plot(range(len(values)), values, marker="o", ms=3, label=label)
    ax.set_xlabel("block")
    ax.set_ylabel(ylabel)
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
