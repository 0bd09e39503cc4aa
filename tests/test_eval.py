"""Evaluation metrics on cases with known answers, and the evaluator's file layouts."""

import numpy as np
import pytest

from fpqvar.eval import (
    FeatureStatistics,
    frechet_distance,
    inception_score,
    load_images,
    load_statistics,
    precision_recall,
    save_reference,
)


def test_fid_of_diagonal_gaussians_is_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var1, var2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(var1) - np.sqrt(var2)) ** 2).sum()
    got = frechet_distance(FeatureStatistics(mu1, np.diag(var1)), FeatureStatistics(mu2, np.diag(var2)))
    assert got == pytest.approx(expected, rel=1e-12)


def test_fid_of_full_covariances_matches_an_independent_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 20)), rng.normal(size=(20, 20))
    s1, s2 = a @ a.T + np.eye(20), b @ b.T + 0.1 * np.eye(20)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    # eig(S1 S2) are the squares of the singular values of S1^1/2 S2^1/2: real and non-negative
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvals(s1 @ s2).real, 0, None)).sum()
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    assert frechet_distance(FeatureStatistics(mu1, s1), FeatureStatistics(mu2, s2)) == pytest.approx(expected, rel=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(1).normal(size=(500, 64))
    stats = FeatureStatistics.of(features)
    assert abs(frechet_distance(stats, stats)) < 1e-8
    with pytest.raises(ValueError, match="different sizes"):
        frechet_distance(stats, FeatureStatistics.of(features[:, :32]))


def test_inception_score_extremes():
    uniform = np.full((1000, 10), 0.1)
    assert inception_score(uniform)[0] == pytest.approx(1.0)
    one_hot = np.eye(10)[np.arange(1000) % 10]  # confident and every class equally often in every split
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-12)


def test_precision_and_recall_on_constructed_clouds():
    rng = np.random.default_rng(2)
    reference = rng.uniform(0, 1, size=(2000, 2))
    assert precision_recall(reference, reference) == (1.0, 1.0)
    far = rng.uniform(10, 11, size=(500, 2))
    assert precision_recall(reference, far) == (0.0, 0.0)
    left_half = rng.uniform(0, 1, size=(2000, 2)) * np.array([0.5, 1.0])  # mode dropping: half the support
    precision, recall = precision_recall(reference, left_half)
    assert precision > 0.97 and 0.4 < recall < 0.65


def test_images_and_reference_statistics_round_trip(tmp_path):
    images = np.random.default_rng(3).integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    pool = FeatureStatistics.of(np.random.default_rng(4).normal(size=(10, 5)))
    spatial = FeatureStatistics.of(np.random.default_rng(5).normal(size=(10, 7)))
    save_reference(tmp_path / "ref.npz", images, pool, spatial)
    assert np.array_equal(load_images(tmp_path / "ref.npz"), images)
    stats = load_statistics(tmp_path / "ref.npz")
    assert np.array_equal(stats["pool"].sigma, pool.sigma) and np.array_equal(stats["spatial"].mu, spatial.mu)
    np.savez(tmp_path / "bad.npz", images=images)
    with pytest.raises(ValueError, match="has no arr_0"):
        load_images(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="supply a folder of PNGs"):
        load_images(tmp_path / "missing.npz")
