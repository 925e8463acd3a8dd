"""Fusion (spec §2.8, §6.14): JSON prediction equals sklearn, NNLS weights, DMOS direction, imputation."""

from __future__ import annotations

import numpy as np
import pytest
from sstam.evaluate import fusion_cv
from sstam.fusion import Fusion, fit_fusion


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    x = rng.random((40, 6))
    y = 90 - 40 * x[:, 0] - 20 * x[:, 1] - 10 * x[:, 4] + rng.normal(0, 1, 40)
    return x, y, [f"content{i % 8}" for i in range(40)]


def test_svr_json_prediction_equals_sklearn(data) -> None:
    x, y, groups = data
    fusion, model = fit_fusion(x, y, groups, "svr")
    z = (x - np.asarray(fusion.x_mean)) / np.asarray(fusion.x_std)
    expected = model.predict(z) * fusion.y_std + fusion.y_mean
    restored = Fusion.from_json(fusion.to_json())
    np.testing.assert_allclose(restored.predict(x), expected, rtol=1e-9, atol=1e-9)
    assert set(fusion.cv["best_params"]) == {"C", "gamma", "epsilon"}


def test_nnls_weights_are_non_negative_and_recover_the_sign(data) -> None:
    x, y, groups = data
    fusion, _ = fit_fusion(x, y, groups, "nnls")
    weights = fusion.weights()
    assert len(weights) == 6 and min(weights.values()) >= 0
    assert weights["blurring"] > weights["blocking"] > 0


def test_missing_temporal_intensities_are_imputed(data) -> None:
    x, y, groups = data
    fusion, _ = fit_fusion(x, y, groups, "nnls")
    row = x[:1].copy()
    row[0, 4:] = np.nan
    imputed = x[:1].copy()
    imputed[0, 4:] = fusion.x_mean[4:]
    assert fusion.predict(row)[0] == pytest.approx(fusion.predict(imputed)[0])


def test_dmos_direction(data) -> None:
    x, y, groups = data
    dmos = 100 - y
    result = fusion_cv(x, dmos, groups, "nnls", score_direction="lower_better", n_splits=20)
    assert result["srocc"] < -0.8  # a higher-is-better score correlates negatively with DMOS
    fusion, _ = fit_fusion(x, dmos, groups, "nnls", score_direction="lower_better")
    assert fusion.score_direction == "lower_better" and fusion.higher_is_better


@pytest.mark.parametrize("features", ["spatial", "temporal"])
def test_feature_ablations(data, features: str) -> None:
    x, y, groups = data
    fusion, _ = fit_fusion(x, y, groups, "svr", features)
    assert len(fusion.features) == (4 if features == "spatial" else 2)
    assert np.isfinite(fusion.predict(x)).all()
