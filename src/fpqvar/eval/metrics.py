"""Image-generation metrics with the mathematics of the OpenAI guided-diffusion (ADM) evaluator the paper used:
Inception Score, FID, sFID (FID on spatial features), precision and recall (k-NN manifolds, k = 3).

Statistics are float64. The matrix square root in FID is taken through symmetric eigendecompositions:
Tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), the eigenvalues of a PSD matrix clipped at 0, which
equals the evaluator's scipy sqrtm trace without its complex residue or eps retries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class FeatureStatistics:
    mu: np.ndarray
    sigma: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray | torch.Tensor) -> FeatureStatistics:
        x = np.asarray(torch.as_tensor(features).double().reshape(len(features), -1).numpy())
        if x.shape[0] < 2:
            raise ValueError(f"statistics need at least 2 feature vectors, got {x.shape[0]}")
        return cls(x.mean(axis=0), np.cov(x, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a: FeatureStatistics, b: FeatureStatistics) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 sqrt(S_a S_b))."""
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise ValueError(f"feature statistics of different sizes: {a.mu.shape} vs {b.mu.shape}")
    root = _psd_sqrt(a.sigma)
    middle = root @ b.sigma @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt)


def inception_score(probabilities: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) per split of the samples: (mean, std) over the splits."""
    p = torch.as_tensor(probabilities).double()
    if p.dim() != 2 or (p < 0).any():
        raise ValueError("inception_score takes an (N, classes) array of class probabilities")
    scores = []
    for part in torch.tensor_split(p, splits):
        marginal = part.mean(dim=0, keepdim=True)
        kl = torch.where(part > 0, part * (part.log() - marginal.log()), torch.zeros_like(part)).sum(dim=1)
        scores.append(math.exp(float(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def _kth_neighbour_radii(features: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Squared distance from each point to its k-th nearest other point."""
    radii = []
    for start in range(0, len(features), batch):
        d = torch.cdist(features[start : start + batch], features).pow(2)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # k + 1: the point itself is at distance 0
    return torch.cat(radii)


def _fraction_inside(points: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, batch: int) -> float:
    inside = []
    for start in range(0, len(points), batch):
        d = torch.cdist(points[start : start + batch], manifold).pow(2)
        inside.append((d <= radii[None, :]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def precision_recall(
    reference: np.ndarray | torch.Tensor, samples: np.ndarray | torch.Tensor, k: int = 3, batch: int = 10_000
) -> tuple[float, float]:
    """Precision: share of samples inside the reference manifold (balls to each reference point's k-th
    neighbour); recall: share of reference points inside the samples' manifold."""
    ref = torch.as_tensor(np.asarray(reference)).double()
    gen = torch.as_tensor(np.asarray(samples)).double()
    if min(len(ref), len(gen)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points on each side")
    precision = _fraction_inside(gen, ref, _kth_neighbour_radii(ref, k, batch), batch)
    recall = _fraction_inside(ref, gen, _kth_neighbour_radii(gen, k, batch), batch)
    return precision, recall
