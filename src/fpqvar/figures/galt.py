"""Figures of GALT (paper Fig. 11): loss curves, loss reduction per block and layer, learned lambdas."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

KIND_LABELS = {"attn.mat_qkv": "QKV projection", "ffn.fc1": "FC1"}


def loss_curves(curves: dict[str, list[float]], block: int):
    """Fig. 11a/b: the per-epoch mean loss of block ``block``'s QKV projection and FC1."""
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.8))
    for ax, (kind, label) in zip(axes, KIND_LABELS.items(), strict=True):
        curve = curves[f"blocks.{block}.{kind}"]
        ax.plot(range(len(curve)), curve, lw=1.2)
        ax.set_title(f"({'ab'[list(KIND_LABELS).index(kind)]}) {label}, block {block}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("GALT loss (Eq. 5)")
        ax.set_yscale("log")
    fig.tight_layout()
    return fig


def loss_reduction_bars(rows: list[dict], paper: dict[str, float]):
    """First-epoch loss / best loss for every block and layer, with the paper's VAR-d30 figure as a line."""
    fig, ax = plt.subplots(figsize=(7.2, 2.8))
    blocks = sorted({r["block"] for r in rows})
    width = 0.4
    for offset, (kind, label) in zip((-width / 2, width / 2), KIND_LABELS.items(), strict=True):
        values = [next(r["reduction"] for r in rows if r["block"] == b and r["layer"] == kind) for b in blocks]
        bars = ax.bar(np.array(blocks) + offset, values, width, label=f"{label} (ours)")
        if kind in paper:
            ax.axhline(paper[kind], ls="--", lw=1, color=bars.patches[0].get_facecolor(), label=f"{label}: paper, VAR-d30 ({paper[kind]}x)")
    ax.set_xlabel("block")
    ax.set_ylabel("loss reduction (x)")
    ax.set_xticks(blocks)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lambda_distributions(lambdas: dict, seconds: dict[str, float] | None = None):
    """log2 lambda of every layer (one box per layer); with ``seconds``, a second panel of GALT's phase times."""
    names = list(lambdas)
    panels = 2 if seconds else 1
    fig, axes = plt.subplots(1, panels, figsize=(7.2 if panels == 2 else 5.0, 2.8), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1]} if panels == 2 else None)
    ax = axes[0, 0]
    ax.boxplot([np.log2(lambdas[n].abs().numpy()) for n in names], whis=(0, 100), widths=0.6)
    ax.set_xticks(range(1, len(names) + 1), [n.removeprefix("blocks.").replace("attn.mat_qkv", "qkv").replace("ffn.fc1", "fc1")
                                            for n in names], rotation=90, fontsize=6)
    ax.set_ylabel("log2 lambda")
    ax.axhline(0, color="grey", lw=0.6)
    if seconds:
        ax = axes[0, 1]
        phases = [p for p in ("sampling", "propagation", "learning") if p in seconds]
        ax.bar(phases, [seconds[p] for p in phases])
        ax.set_ylabel("seconds (this run)")
        ax.set_title(f"GALT wall time: {seconds.get('total', sum(seconds[p] for p in phases)):.0f} s", fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    fig.tight_layout()
    return fig
