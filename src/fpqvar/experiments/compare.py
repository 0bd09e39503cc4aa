"""Rows of `fpqvar table` against the paper's tables: what can be compared across models, and what is noise.

Absolute numbers of a small MNIST model scored by a digit classifier cannot be compared with VAR-d30 scored by
Inception. What can: the order of the recipes (rank correlation with the paper's order) and the sign of each
method's gain over its baseline. Every difference is checked against the measured spread: a difference no
larger than the spread of either row (seed-to-seed range, or the bootstrap half-width of a teacher-forced
measure) is marked not significant.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

# Our metrics, and whether more is better. classifier_* are proxies (digit classifier, not Inception).
HIGHER_IS_BETTER = {
    "classifier_is": True, "classifier_fid": False, "classifier_sfid": False, "classifier_precision": True,
    "classifier_recall": True, "classifier_accuracy": True, "inception_score": True, "fid": False, "sfid": False,
    "precision": True, "recall": True, "nll": False, "kl": False, "top1_agreement": True,
}
TEACHER_FORCED = ("nll", "kl", "top1_agreement")
# The paper's columns in data/paper/table*.csv, and whether more is better.
PAPER_HIGHER_IS_BETTER = {"IS": True, "FID": False, "precision": True, "recall": True}


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """One line per recipe: every sample metric (mean over seeds) and teacher-forced metric, each with its spread
    in a ``<metric>_spread`` column (seed range, or bootstrap half-width)."""
    lines = []
    for row in rows:
        line = {"recipe": row["recipe_name"], "samples_per_seed": row["num_samples"], "seeds": len(row["protocol"]["seeds"])}
        for name, value in row["metrics"].items():
            line[name], line[f"{name}_spread"] = value, row["spread"].get(name)
        tf = row["teacher_forced"]
        for name in (*TEACHER_FORCED, "nll_reference"):
            low, high = tf["interval"][name]
            line[name], line[f"{name}_spread"] = tf[name], (high - low) / 2
        lines.append(line)
    return pd.DataFrame(lines).set_index("recipe")


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant or too short."""
    a, b = pd.Series(np.asarray(a, dtype=float)).rank(), pd.Series(np.asarray(b, dtype=float)).rank()
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def quality_order_correlation(ours: pd.DataFrame, paper: pd.DataFrame, paper_metric: str = "FID") -> pd.DataFrame:
    """For each of our metrics: the Spearman correlation of its quality order with the paper's ``paper_metric``
    order over the recipes both have (+1: the same ranking of recipes from best to worst)."""
    common = [r for r in paper["recipe"] if r in ours.index]
    paper_values = paper.set_index("recipe").loc[common, paper_metric].astype(float)
    paper_sign = 1 if PAPER_HIGHER_IS_BETTER[paper_metric] else -1
    lines = []
    for metric, higher in HIGHER_IS_BETTER.items():
        if metric not in ours.columns:
            continue
        ours_values = ours.loc[common, metric].astype(float) * (1 if higher else -1)
        lines.append({"our metric": metric, f"rank correlation with paper {paper_metric}":
                      spearman(ours_values, paper_values * paper_sign), "recipes": len(common)})
    return pd.DataFrame(lines).set_index("our metric")


def gain(ours: pd.DataFrame, method: str, baseline: str, metric: str) -> dict:
    """``method``'s improvement over ``baseline`` (positive: better), and whether it exceeds the spread of both."""
    higher = HIGHER_IS_BETTER[metric]
    delta = float(ours.loc[method, metric] - ours.loc[baseline, metric]) * (1 if higher else -1)
    spreads = [ours.loc[r].get(f"{metric}_spread") for r in (method, baseline)]
    spreads = [s for s in spreads if s is not None and np.isfinite(s)]
    spread = max(spreads) if spreads else float("nan")
    significant = bool(spreads) and abs(delta) > spread
    return {"gain": delta, "spread": spread, "significant": significant}


def paper_gain(paper: pd.DataFrame, method: str, baseline: str, metric: str) -> float:
    table = paper.set_index("recipe")
    sign = 1 if PAPER_HIGHER_IS_BETTER[metric] else -1
    return float(table.loc[method, metric] - table.loc[baseline, metric]) * sign


def gains_table(ours: pd.DataFrame, paper: pd.DataFrame, pairs: list[tuple[str, str]], metrics: list[str],
                paper_metric: str = "FID") -> pd.DataFrame:
    """Per (method, baseline) pair: the paper's gain in ``paper_metric`` and ours in each metric, with its sign and
    "n.s." where it is within the spread."""
    lines = []
    for method, baseline in pairs:
        if method not in ours.index or baseline not in ours.index:
            continue
        line = {"method": method, "baseline": baseline}
        if method in set(paper["recipe"]) and baseline in set(paper["recipe"]):
            line[f"paper gain ({paper_metric})"] = paper_gain(paper, method, baseline, paper_metric)
        for metric in metrics:
            g = gain(ours, method, baseline, metric)
            line[f"{metric} gain"] = g["gain"]
            line[f"{metric} verdict"] = ("better" if g["gain"] > 0 else "worse") if g["significant"] else "n.s."
        lines.append(line)
    return pd.DataFrame(lines)


def separation(ours: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per metric: the share of recipe pairs whose difference exceeds the spread of both rows (1: the metric
    tells every pair apart; 0: every difference is within noise)."""
    lines = []
    for metric in metrics:
        if metric not in ours.columns:
            continue
        pairs = list(itertools.combinations(ours.index, 2))
        apart = sum(gain(ours, a, b, metric)["significant"] for a, b in pairs)
        lines.append({"metric": metric, "pairs apart": apart, "pairs": len(pairs), "share apart": apart / len(pairs) if pairs else float("nan")})
    return pd.DataFrame(lines).set_index("metric")


def side_by_side(ours: pd.DataFrame, paper: pd.DataFrame, our_metrics: list[str], our_label: str, paper_label: str) -> pd.DataFrame:
    """The paper's rows in the paper's order, its numbers beside ours (NaN where we have no row)."""
    paper = paper.set_index("row")
    columns = {}
    for column in paper.columns:
        if column != "recipe":
            columns[(paper_label, column)] = paper[column]
    for metric in our_metrics:
        values = [ours.loc[r, metric] if r in ours.index and metric in ours.columns else np.nan for r in paper["recipe"]]
        columns[(our_label, metric)] = pd.Series(values, index=paper.index)
    return pd.DataFrame(columns)
