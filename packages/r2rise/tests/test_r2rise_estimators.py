from __future__ import annotations

import numpy as np
import pytest
from r2rise.estimators import (
    centred_map,
    compressed_map,
    linear_map,
    permutation_test,
    rank_agreement,
    raw_map,
    rise_map,
    roc_auc,
)
from r2rise.masks import generate_grids
from scipy import stats


def test_raw_equals_sum_of_returns_times_masks(rng):
    masks = generate_grids(40, 3, 7, 0.5, 0)
    returns = rng.integers(0, 500, size=40).astype(float)
    expected = np.zeros((3, 7))
    for r, m in zip(returns, masks, strict=True):
        expected += r * m
    assert np.array_equal(raw_map(masks, returns), expected)
    np.testing.assert_allclose(rise_map(masks, returns, 0.5), expected / (40 * 0.5))


def test_centred_matches_brute_force(rng):
    masks = generate_grids(60, 2, 5, 0.3, 1)
    returns = rng.normal(size=60)
    out = centred_map(masks, returns)
    for d in range(2):
        for b in range(5):
            kept = masks[:, d, b] == 1
            assert out[d, b] == pytest.approx(returns[kept].mean() - returns[~kept].mean(), abs=1e-12)


def test_centred_nan_for_degenerate_cells():
    masks = np.ones((10, 1, 2), dtype=np.uint8)
    masks[::2, 0, 1] = 0
    with pytest.warns(RuntimeWarning, match="always kept"):
        out = centred_map(masks, np.arange(10.0))
    assert np.isnan(out[0, 0])
    assert out[0, 1] == pytest.approx(np.arange(1, 10, 2).mean() - np.arange(0, 10, 2).mean())


@pytest.mark.parametrize("estimator", ["centred", "linear"])
def test_stub_learner_linear_in_mask_is_recovered(estimator):
    rng = np.random.default_rng(0)
    masks = generate_grids(500, 5, 20, 0.5, 11)
    w = rng.normal(size=(5, 20)) * 10
    returns = 100 + (masks * w).sum(axis=(1, 2)) + rng.normal(scale=5.0, size=500)
    out = centred_map(masks, returns) if estimator == "centred" else linear_map(masks, returns, 1.0)
    assert stats.spearmanr(out.ravel(), w.ravel()).statistic >= 0.9


def test_linear_estimator_exact_without_noise():
    rng = np.random.default_rng(1)
    masks = generate_grids(300, 1, 6, 0.5, 2)
    w = rng.normal(size=(1, 6))
    returns = 3.0 + (masks * w).sum(axis=(1, 2))
    beta = linear_map(masks, returns, ridge=1e-9)
    std = masks.reshape(300, -1).std(axis=0)
    np.testing.assert_allclose(beta.ravel() / std, w.ravel(), rtol=1e-6)


def test_compressed_map_official_definition(rng):
    frame_map = rng.normal(size=(4, 95))
    out = compressed_map(frame_map, 10)
    expected = [frame_map[:, s : s + 10].sum() for s in range(0, 95, 10)]
    np.testing.assert_allclose(out, expected)


def test_permutation_test_detects_signal_and_not_noise():
    masks = generate_grids(200, 2, 10, 0.5, 4)
    rng = np.random.default_rng(5)
    signal = 50.0 * masks[:, 0, 0] + rng.normal(size=200)
    noise = rng.normal(size=200)
    assert permutation_test(masks, signal, 200, 0)["p_value"] < 0.01
    assert permutation_test(masks, noise, 200, 0)["p_value"] > 0.01


def test_roc_auc_matches_pairwise_count(rng):
    scores = rng.normal(size=40).round(1)
    positive = rng.random(40) < 0.4
    pos, neg = scores[positive], scores[~positive]
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert roc_auc(scores, positive) == pytest.approx(expected)


def test_rank_agreement(rng):
    a = rng.normal(size=50)
    b = a + rng.normal(scale=0.1, size=50)
    out = rank_agreement(a, b, 0.2)
    assert out["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic)
    assert out["kendall"] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert 0 <= out["top_jaccard"] <= 1
    assert rank_agreement(a, a)["top_jaccard"] == 1.0
