"""Evaluation: IS, FID, sFID, precision/recall as the OpenAI (ADM) evaluator computes them."""

from .metrics import FeatureStatistics, frechet_distance, inception_score, precision_recall
from .reference import load_images, load_statistics, save_reference

__all__ = ["FeatureStatistics", "frechet_distance", "inception_score", "precision_recall", "load_images",
           "load_statistics", "save_reference"]
