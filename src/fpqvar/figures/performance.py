"""Figures of the accelerator's performance model (fpqvar.hw.performance): roofline, time by part, design sweep."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns


def roofline(steps: list, *, peak_macs_per_s: float, bandwidth_bytes_per_s: float, title: str):
    """Each step as a point: multiply-accumulates per byte streamed (weights and KV cache) against the rate it
    reaches, under the machine's compute roof and its bandwidth slope."""
    intensity = np.array([s.macs / (s.weight_bytes + s.kv_bytes) for s in steps])
    achieved = np.array([s.macs / s.seconds for s in steps])
    x = np.logspace(np.log10(intensity.min() / 2), np.log10(intensity.max() * 2), 200)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(x, np.minimum(peak_macs_per_s, x * bandwidth_bytes_per_s) / 1e12, color="0.3", lw=1, label="roof")
    ax.scatter(intensity, achieved / 1e12, color=sns.color_palette()[0], zorder=3)
    for s, xi, yi in zip(steps, intensity, achieved, strict=True):
        ax.annotate(f"{s.index}", (xi, yi / 1e12), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MACs per byte from memory")
    ax.set_ylabel("TMAC/s")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def time_by_part(steps: list, title: str):
    """Stacked seconds per step, by layer (or overlapped pair) of the schedule."""
    parts = sorted({k for s in steps for k in s.by_part}, key=lambda k: -sum(s.by_part.get(k, 0.0) for s in steps))
    colors = sns.color_palette("tab10", len(parts))
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    bottom = np.zeros(len(steps))
    for part, color in zip(parts, colors, strict=True):
        values = np.array([1e3 * s.by_part.get(part, 0.0) for s in steps])
        ax.bar([s.index for s in steps], values, bottom=bottom, label=part, color=color)
        bottom += values
    ax.set_xlabel("step")
    ax.set_ylabel("ms")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def sweep_scatter(rows: list[dict], *, luts: float, title: str):
    """Throughput of every design point against its LUTs, the device's LUTs as a line, infeasible points grey."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    fits = np.array([r["fits"] for r in rows])
    lut = np.array([r["lut"] for r in rows]) / 1e3
    ips = np.array([r["img_per_s"] for r in rows])
    ax.scatter(lut[~fits], ips[~fits], s=8, color="0.75", label="does not fit")
    ax.scatter(lut[fits], ips[fits], s=10, color=sns.color_palette()[1], label="fits the VC1902")
    ax.axvline(luts / 1e3, color="0.3", lw=0.8, ls="--")
    ax.set_xlabel("LUTs (thousands, Table VI scaled)")
    ax.set_ylabel("img/s")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
