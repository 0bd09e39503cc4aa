"""Evaluate samples against a reference batch, as the OpenAI evaluator does, with any feature extractor."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

from .metrics import FeatureStatistics, frechet_distance, inception_score, precision_recall

FeatureExtractor = Callable[[torch.Tensor], dict[str, torch.Tensor]]  # uint8 (N, H, W, 3) -> pool, probs, spatial


def evaluation_order(count: int, seed: int = 0) -> np.ndarray:
    """A fixed mixed order of ``count`` images for the evaluator.

    The evaluator's Inception Score averages over consecutive splits of 5,000 images, each with its own class
    marginal. Images in plan order (class by class) would give every split only a few classes and cap the
    score; the released packer globs PNGs in directory order, which mixes them. This permutation mixes them the
    same way every time."""
    return np.random.default_rng(seed).permutation(count)


def extract_features(extractor: FeatureExtractor, images: np.ndarray, batch_size: int = 100, desc: str = "features",
                     *, progress: bool = True) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {}
    for start in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress):
        with torch.inference_mode():
            out = extractor(torch.from_numpy(images[start : start + batch_size]))
        for name, value in out.items():
            parts.setdefault(name, []).append(value.double().cpu().numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def evaluate(
    extractor: FeatureExtractor,
    samples: np.ndarray,
    reference: np.ndarray,
    reference_statistics: dict[str, FeatureStatistics] | None = None,
    batch_size: int = 100,
    split_size: int = 5000,
    *,
    progress: bool = True,
) -> dict[str, float]:
    """IS (samples), FID and sFID (against precomputed reference statistics when given), precision and recall.

    Samples are taken in `evaluation_order` first: IS averages over consecutive splits of ``split_size``, and
    samples stored class by class (a folder of `class<c>_img<i>.png`, say) would give each split only some of
    the classes. The other metrics do not depend on the order."""
    samples = samples[evaluation_order(len(samples))]
    sample_features = extract_features(extractor, samples, batch_size, "sample features", progress=progress)
    reference_features = extract_features(extractor, reference, batch_size, "reference features", progress=progress)
    stats = reference_statistics or {}
    reference_pool = stats.get("pool") or FeatureStatistics.of(reference_features["pool"])
    reference_spatial = stats.get("spatial") or FeatureStatistics.of(reference_features["spatial"])
    splits = max(1, -(-len(samples) // split_size))  # the evaluator's splits of 5000: 10 for 50,000 samples
    inception, inception_std = inception_score(sample_features["probs"], splits=splits)
    precision, recall = precision_recall(reference_features["pool"], sample_features["pool"], k=3)
    return {
        "inception_score": inception,
        "inception_score_std": inception_std,
        "fid": frechet_distance(FeatureStatistics.of(sample_features["pool"]), reference_pool),
        "sfid": frechet_distance(FeatureStatistics.of(sample_features["spatial"]), reference_spatial),
        "precision": precision,
        "recall": recall,
        "num_samples": int(len(samples)),
        "sample_order": "fpqvar.eval.evaluate.evaluation_order",
        "num_reference": int(len(reference)),
    }
