"""Figures of the dual-format search (paper Alg. 2) on FC2 inputs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def search_heatmap(errors: dict[tuple[str, str], float], title: str, chosen: tuple[str, str] | None = None):
    """Alg. 2's table as a heat map: rows the negative grid, columns the positive grid, cells the mean MSE."""
    table = pd.Series(errors).unstack()
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    sns.heatmap(table, annot=True, fmt=".2e", cmap="rocket_r", ax=ax, annot_kws={"fontsize": 7})
    if chosen is not None:
        ax.add_patch(plt.Rectangle((list(table.columns).index(chosen[1]), list(table.index).index(chosen[0])), 1, 1,
                                   fill=False, edgecolor="cyan", lw=2))
    ax.set_xlabel("positive grid")
    ax.set_ylabel("negative grid")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig
