"""Evaluation utilities against scipy / numpy / known parameters (spec §6.2)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sstam.metrics import (
    content_disjoint_splits,
    content_ids,
    correlation_metrics,
    fit_logistic5,
    krocc,
    plcc,
    rmse,
    srocc,
    vqeg_logistic5,
)


@pytest.mark.parametrize("ties", [False, True])
def test_correlations_equal_scipy(rng: np.random.Generator, ties: bool) -> None:
    x = rng.normal(size=50)
    y = 0.7 * x + rng.normal(size=50)
    if ties:
        x = np.round(x, 1)
        y = np.round(y, 0)
    assert srocc(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-9)
    assert krocc(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-9)
    assert plcc(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-9)


def test_rmse_is_the_root_mean_square(rng: np.random.Generator) -> None:
    a, b = rng.normal(size=31), rng.normal(size=31)
    expected = float(np.sqrt(sum((u - v) ** 2 for u, v in zip(a, b, strict=True)) / 31))
    assert rmse(a, b) == pytest.approx(expected, rel=1e-12)


def test_logistic5_recovers_known_parameters() -> None:
    beta = np.array([60.0, 0.15, 50.0, 0.1, 40.0])
    q = np.linspace(0, 100, 80)
    y = vqeg_logistic5(q, *beta)
    fitted = fit_logistic5(q, y)
    assert fitted is not None
    np.testing.assert_allclose(fitted, beta, atol=1e-3)
    np.testing.assert_allclose(vqeg_logistic5(q, *fitted), y, atol=1e-6)


def test_failed_fit_falls_back_to_linear() -> None:
    q = np.array([1.0, 2.0, 3.0])  # too few points for five parameters
    metrics = correlation_metrics(q, 2 * q + 1)
    assert metrics["mapping"] == "linear"
    assert metrics["rmse"] == pytest.approx(0.0, abs=1e-9)


def test_content_disjoint_splits_never_share_a_content(rng: np.random.Generator) -> None:
    groups = content_ids([f"{c}_crf{q}.mp4" for c in "abcdefghij" for q in (28, 35, 42, 51)])
    for train, test in content_disjoint_splits(groups, n_splits=100, seed=3):
        assert set(np.asarray(groups)[train]).isdisjoint(np.asarray(groups)[test])
        assert len(train) + len(test) == len(groups)
        assert len(set(np.asarray(groups)[test])) == 2  # 20 % of 10 contents


def test_motorcycle_pair_is_one_content() -> None:
    assert content_ids(["motorcycle_left_crf28.mp4", "motorcycle_right_crf28.mp4"]) == ["motorcycle"] * 2
    assert content_ids(["pa2_25fps.yuv"], r"^([A-Za-z]+)") == ["pa"]


def test_spearman_exact_is_the_fraction_and_matches_scipy() -> None:
    """One swap among 5 levels is exactly 9/10: scipy gives 0.8999999999999998, the exact version the double
    nearest 9/10 (so ``>= 0.9`` holds with no tolerance); without a swap both are 1; with ties scipy is used."""
    from fractions import Fraction

    from sstam.metrics import spearman_exact

    levels, swapped = [0, 1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4, 0.5]
    assert spearman_exact(levels, swapped) == float(Fraction(9, 10)) == 0.9
    assert spearman_exact(levels, swapped) >= 0.9
    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(3, 9))
        x, y = rng.permutation(n).astype(float), rng.normal(size=n)
        assert spearman_exact(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    tied = [0.1, 0.1, 0.2, 0.3, 0.4]
    assert spearman_exact(levels, tied) == stats.spearmanr(levels, tied).statistic
