"""Quality of class-conditional samples measured with our digit classifier (proxy metrics, labelled as such).

`classifier_accuracy` asks whether each sample shows its requested class; `proxy_metrics` runs the evaluator's
mathematics (IS, FID, sFID, precision, recall) on the classifier's features. Names carry the "classifier-" prefix
so that no reader mistakes them for the Inception-based numbers of the paper.
"""

from __future__ import annotations

import numpy as np
import torch

from .classifier import DigitClassifier
from .evaluate import evaluate

PROXY_NAMES = {"inception_score": "classifier_is", "inception_score_std": "classifier_is_std", "fid": "classifier_fid",
               "sfid": "classifier_sfid", "precision": "classifier_precision", "recall": "classifier_recall"}


def predicted_classes(classifier: DigitClassifier, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    return np.concatenate([
        classifier.extract(torch.as_tensor(images[i : i + batch_size]))["probs"].argmax(-1).cpu().numpy()
        for i in range(0, len(images), batch_size)
    ])


def classifier_accuracy(classifier: DigitClassifier, images: np.ndarray, labels: np.ndarray) -> dict:
    """Share of images the classifier assigns to their label, overall and per class."""
    hit = predicted_classes(classifier, images) == labels
    classes = sorted(set(labels.tolist()))
    return {"classifier_accuracy": float(hit.mean()),
            "per_class_accuracy": {str(c): float(hit[labels == c].mean()) for c in classes}}


def proxy_metrics(classifier: DigitClassifier, samples: np.ndarray, reference: np.ndarray, batch_size: int = 1000,
                  *, progress: bool = False) -> dict:
    """The evaluator's metrics on classifier features, keys renamed to classifier_fid etc."""
    metrics = evaluate(classifier.extract, samples, reference, batch_size=batch_size, progress=progress)
    return {PROXY_NAMES.get(k, k): v for k, v in metrics.items()}


def trusted_metrics(metrics: dict) -> dict:
    """``metrics`` without the Inception Score when the samples were scored in plan (class-sorted) order: files
    measured before `evaluation_order` existed have IS splits that each saw only some classes (IS is capped at
    the number of classes per split). The other metrics do not depend on the order."""
    if "sample_order" in metrics:
        return metrics
    return {k: v for k, v in metrics.items() if k not in ("classifier_is", "classifier_is_std")}
