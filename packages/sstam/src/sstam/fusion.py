"""Fusion of the six PEA intensities into the SSTAM score (spec §2.8).

* ``svr`` (default, lineage: SAAM): ``sklearn.svm.SVR(kernel="rbf")`` on the standardised 6-d vector with ``y``
  standardised during fitting; C, gamma, epsilon chosen by an inner content-grouped ``GroupKFold(min(4, groups))``
  over C ∈ {0.1, 1, 10, 100}, gamma ∈ {"scale", 0.1, 1}, epsilon ∈ {0.01, 0.1} (proposed grid).
* ``nnls``: ``Q = b − Σ_k β_k · z_k`` with β_k ≥ 0 (``LinearRegression(positive=True)`` on −z); β is reported.

Missing intensities (temporal ones of clips shorter than L) are imputed with the training mean (0 after
standardisation). Predictions are not clipped. A fitted fusion is stored as JSON (``fusion.json``: standardisation,
support vectors, dual coefficients or β) and predicted from that JSON without unpickling anything; the sklearn
object is also written as ``fusion.joblib`` for sklearn users (pickled: load only trusted files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sstam.synth import PEAS, SPATIAL_PEAS, TEMPORAL_PEAS

SVR_GRID = {"C": [0.1, 1.0, 10.0, 100.0], "gamma": ["scale", 0.1, 1.0], "epsilon": [0.01, 0.1]}
FEATURE_SETS = {"all": PEAS, "spatial": SPATIAL_PEAS, "temporal": TEMPORAL_PEAS}
KINDS = ("svr", "nnls")


def feature_matrix(intensities: Sequence[dict[str, float | None]]) -> np.ndarray:
    """Dicts of the six intensities → ``float [N, 6]`` with NaN for ``None``."""
    return np.asarray(
        [[np.nan if d.get(k) is None else float(d[k]) for k in PEAS] for d in intensities], np.float64
    )


@dataclass
class Fusion:
    """A fitted regressor that predicts from its JSON parameters."""

    kind: str
    features: tuple[str, ...]
    x_mean: list[float]
    x_std: list[float]
    y_mean: float
    y_std: float
    params: dict[str, Any]
    label_source: str = "unknown"
    label_range: list[float] = field(default_factory=lambda: [0.0, 100.0])
    higher_is_better: bool = True
    score_direction: str = "higher_better"  # of the labels it was fitted on; lower_better labels were negated
    training_set: str = ""
    cv: dict[str, Any] = field(default_factory=dict)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if x.ndim == 1:
            x = x[None]
        columns = [PEAS.index(f) for f in self.features]
        z = (x[:, columns] - np.asarray(self.x_mean)) / np.asarray(self.x_std)
        return np.nan_to_num(z, nan=0.0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """``[N, 6]`` intensities (NaN = missing) → scores ``[N]`` on the label scale (higher = better)."""
        z = self.standardise(x)
        if self.kind == "svr":
            sv = np.asarray(self.params["support_vectors"], np.float64)
            coef = np.asarray(self.params["dual_coef"], np.float64)
            d2 = ((z[:, None, :] - sv[None]) ** 2).sum(-1)
            f = np.exp(-self.params["gamma"] * d2) @ coef + self.params["intercept"]
        else:
            f = self.params["intercept"] - z @ np.asarray(self.params["beta"], np.float64)
        return f * self.y_std + self.y_mean

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features": list(self.features),
            "x_mean": self.x_mean,
            "x_std": self.x_std,
            "y_mean": self.y_mean,
            "y_std": self.y_std,
            "params": self.params,
            "label_source": self.label_source,
            "label_range": self.label_range,
            "higher_is_better": self.higher_is_better,
            "score_direction": self.score_direction,
            "training_set": self.training_set,
            "cv": self.cv,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fusion:
        data = dict(data)
        data["features"] = tuple(data["features"])
        return cls(**data)

    def weights(self) -> dict[str, float] | None:
        """NNLS β per PEA (None for SVR)."""
        if self.kind != "nnls":
            return None
        return dict(zip(self.features, self.params["beta"], strict=True))


def fit_fusion(
    x: np.ndarray,
    y: Sequence[float],
    groups: Sequence[str],
    kind: str = "svr",
    features: str = "all",
    score_direction: str = "higher_better",
    label_source: str = "unknown",
    training_set: str = "",
    inner_folds: int = 4,
) -> tuple[Fusion, Any]:
    """Fit the fusion on intensities ``x [N, 6]`` and labels ``y`` (negated first when ``lower_better``)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.svm import SVR

    if kind not in KINDS:
        raise ValueError(f"fusion must be one of {', '.join(KINDS)}, got {kind!r}")
    if features not in FEATURE_SETS:
        raise ValueError(f"fusion features must be one of {', '.join(FEATURE_SETS)}, got {features!r}")
    if score_direction not in ("higher_better", "lower_better"):
        raise ValueError(f"score_direction must be higher_better or lower_better, got {score_direction!r}")
    names = FEATURE_SETS[features]
    columns = [PEAS.index(f) for f in names]
    x = np.asarray(x, np.float64)[:, columns]
    labels = np.asarray(y, np.float64)
    target = -labels if score_direction == "lower_better" else labels
    x_mean = np.nanmean(x, axis=0)
    x_std = np.nanstd(x, axis=0)
    x_mean = np.where(np.isfinite(x_mean), x_mean, 0.0)
    x_std = np.where(np.isfinite(x_std) & (x_std > 1e-12), x_std, 1.0)
    z = np.nan_to_num((x - x_mean) / x_std, nan=0.0)
    y_mean, y_std = float(target.mean()), float(target.std() or 1.0)
    t = (target - y_mean) / y_std
    groups = np.asarray([str(g) for g in groups])
    cv: dict[str, Any] = {}
    if kind == "svr":
        n_groups = len(np.unique(groups))
        if n_groups >= 2:
            search = GridSearchCV(
                SVR(kernel="rbf"),
                SVR_GRID,
                cv=GroupKFold(min(inner_folds, n_groups)),
                scoring="neg_mean_squared_error",
            )
            search.fit(z, t, groups=groups)
            model = search.best_estimator_
            cv = {
                "best_params": {k: v for k, v in search.best_params_.items()},
                "inner_mse": -float(search.best_score_),
            }
        else:
            model = SVR(kernel="rbf").fit(z, t)
            cv = {
                "best_params": {"C": 1.0, "gamma": "scale", "epsilon": 0.1},
                "note": "one content: no inner CV",
            }
        params = {
            "support_vectors": model.support_vectors_.tolist(),
            "dual_coef": model.dual_coef_.ravel().tolist(),
            "intercept": float(model.intercept_[0]),
            "gamma": float(model._gamma),
        }
    else:
        model = LinearRegression(positive=True).fit(-z, t)
        params = {"beta": [float(b) for b in model.coef_], "intercept": float(model.intercept_)}
    finite = labels[np.isfinite(labels)]
    fusion = Fusion(
        kind,
        tuple(names),
        x_mean.tolist(),
        x_std.tolist(),
        y_mean,
        y_std,
        params,
        label_source,
        [float(finite.min()), float(finite.max())] if len(finite) else [0.0, 100.0],
        True,
        score_direction,
        training_set,
        cv,
    )
    return fusion, model
