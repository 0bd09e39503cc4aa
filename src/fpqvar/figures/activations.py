"""Figures of layer inputs: Fig. 3 (distributions and levels), Fig. 4 (outlier channels), Fig. 6 (HT vs GHT),
Fig. 1e (cost by component). Drawn from data the library computed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch


def distributions_with_levels(values: dict[str, torch.Tensor], levels: dict[str, dict[str, torch.Tensor]], title: str,
                              xlim: dict[str, tuple[float, float]] | None = None):
    """Fig. 3: one panel per layer input: a histogram of its values (log counts) and, below it, each
    format's quantization levels (per-tensor absmax scale) as a row of ticks. ``xlim`` zooms a panel (the
    histogram then counts the values inside the window only)."""
    xlim = xlim or {}
    fig, axes = plt.subplots(2, len(values), figsize=(4.6 * len(values), 4.6), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.3]}, sharex="col")
    for col, (panel, x) in enumerate(values.items()):
        hist, ticks = axes[0, col], axes[1, col]
        x = x.reshape(-1).float()
        grids = levels[panel]
        if panel in xlim:
            low, high = xlim[panel]
            x = x[(x >= low) & (x <= high)]
            grids = {label: g[(g >= low) & (g <= high)] for label, g in grids.items()}
            hist.set_xlim(low, high)
        sns.histplot(x.numpy(), bins=200, ax=hist, log_scale=(False, True), element="step", fill=False, color="tab:blue")
        hist.set_title(panel, fontsize=10)
        hist.set_ylabel("count (log)")
        for row, (label, grid) in enumerate(grids.items()):
            ticks.scatter(grid.numpy(), np.full(len(grid), row), marker="|", s=160, label=label)
        ticks.set_yticks(range(len(grids)), list(grids), fontsize=8)
        ticks.set_ylim(-0.7, len(grids) - 0.3)
        ticks.set_xlabel("input value")
    for col in range(1, len(values)):
        axes[1, col].tick_params(axis="y", labelleft=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def outlier_channels(absmax: dict[str, torch.Tensor], top: dict[str, list[list[int]]], tokens: list[int], title: str):
    """Fig. 4: per layer, the per-channel max |x| at every step (heat map, steps x channels, log colour) with
    each step's top channels marked by red triangles; rows labelled with the CFG-doubled token counts."""
    fig, axes = plt.subplots(len(absmax), 1, figsize=(10, 1.9 * len(absmax) + 0.6), squeeze=False)
    for ax, (label, table) in zip(axes[:, 0], absmax.items(), strict=True):
        data = np.log10(table.double().clamp_min(1e-12).numpy())
        sns.heatmap(data, ax=ax, cmap="viridis", cbar_kws={"label": "log10 max|x|"}, xticklabels=False,
                    yticklabels=[f"step {k} ({n} tok)" for k, n in enumerate(tokens)])
        for step, channels in enumerate(top[label]):
            ax.scatter(np.array(channels) + 0.5, np.full(len(channels), step + 0.5), marker="v", color="red", s=14)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("input channel")
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def overlap_heatmaps(overlaps: dict[str, torch.Tensor], title: str):
    """Fig. 4b companion: the share of step i's top channels also among step j's, per layer."""
    fig, axes = plt.subplots(1, len(overlaps), figsize=(4.2 * len(overlaps), 3.6), squeeze=False)
    for ax, (label, matrix) in zip(axes[0], overlaps.items(), strict=True):
        sns.heatmap(matrix.numpy(), ax=ax, vmin=0, vmax=1, annot=True, fmt=".1f", annot_kws={"fontsize": 6},
                    cmap="mako", cbar=False)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step j")
        ax.set_ylabel("step i")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def magnitude_maps(maps: dict[str, torch.Tensor], title: str):
    """Fig. 6: |x| of one input (tokens x channels) for each rotation, one shared colour scale."""
    vmax = max(float(m.abs().max()) for m in maps.values())
    fig, axes = plt.subplots(1, len(maps), figsize=(4.4 * len(maps), 3.4), squeeze=False)
    for ax, (label, m) in zip(axes[0], maps.items(), strict=True):
        image = ax.imshow(m.abs().float().numpy(), aspect="auto", cmap="coolwarm", vmin=0, vmax=vmax, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("channel")
        ax.set_ylabel("token")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="|x|")
    fig.suptitle(title, fontsize=10)
    return fig


def cost_shares(table: pd.DataFrame, paper_share: float, title: str):
    """Fig. 1e: the transformer's share of parameters and FLOPs per model, with the paper's ~share as a line."""
    columns = [c for c in table.columns if c.startswith("transformer share")]
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    long = table[columns].reset_index(names="model").melt(id_vars="model", var_name="quantity", value_name="share")
    sns.barplot(long, x="model", y="share", hue="quantity", ax=ax)
    ax.axhline(paper_share, color="black", ls="--", lw=0.8, label=f"paper, VAR-d30: ~{paper_share:.0%}")
    ax.set_ylim(0, 1)
    ax.set_ylabel("transformer share")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
