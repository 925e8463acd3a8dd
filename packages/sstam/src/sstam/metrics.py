"""Evaluation protocol (spec §2.9, standard): SROCC, KROCC (τ-b), PLCC and RMSE after the VQEG 5-parameter
logistic mapping, and content-disjoint train/test splits."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats


def srocc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Spearman rank-order correlation."""
    return float(stats.spearmanr(pred, target).statistic)


def spearman_exact(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho computed in exact rational arithmetic and rounded once to the nearest double.

    Without ties the ranks are integers and ``rho = 1 − 6·Σd² / (n(n² − 1))`` is a fraction, so a value equal
    to a decimal threshold (one swap of 5 levels: exactly 9/10) becomes the same double as the literal ``0.9``
    and ``rho >= 0.9`` needs no tolerance (rounding is monotone; no other fraction with this small a
    denominator lies within a double's spacing of the threshold). With ties (rho is then a ratio with a
    square root) scipy's value is returned.
    """
    from fractions import Fraction

    xs, ys = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(xs)
    if n < 2 or len(np.unique(xs)) < n or len(np.unique(ys)) < n:
        return float(stats.spearmanr(xs, ys).statistic)
    rx = np.argsort(np.argsort(xs, kind="stable"), kind="stable")
    ry = np.argsort(np.argsort(ys, kind="stable"), kind="stable")
    d2 = int(((rx - ry) ** 2).sum())
    return float(1 - Fraction(6 * d2, n * (n * n - 1)))


def krocc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Kendall rank-order correlation (τ-b)."""
    return float(stats.kendalltau(pred, target).statistic)


def plcc(pred: Sequence[float], target: Sequence[float]) -> float:
    """Pearson linear correlation."""
    return float(stats.pearsonr(pred, target).statistic)


def rmse(pred: Sequence[float], target: Sequence[float]) -> float:
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.sqrt(np.mean(diff * diff)))


def vqeg_logistic5(q: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """``Q' = β1·(1/2 − 1/(1 + exp(β2·(Q − β3)))) + β4·Q + β5`` (VQEG 5-parameter logistic)."""
    q = np.asarray(q, dtype=np.float64)
    z = np.clip(b2 * (q - b3), -500.0, 500.0)
    return b1 * (0.5 - 1.0 / (1.0 + np.exp(z))) + b4 * q + b5


def logistic5_init(q: np.ndarray, y: np.ndarray) -> list[float]:
    """Initial β: ``[max(y) − min(y), sign(r)/std(Q), mean(Q), 0, mean(y)]`` (r = Pearson(Q, y))."""
    q, y = np.asarray(q, np.float64), np.asarray(y, np.float64)
    r = np.corrcoef(q, y)[0, 1] if q.std() > 0 and y.std() > 0 else 1.0
    sign = 1.0 if not np.isfinite(r) or r >= 0 else -1.0
    return [
        float(y.max() - y.min()),
        sign / max(float(q.std()), 1e-12),
        float(q.mean()),
        0.0,
        float(y.mean()),
    ]


def fit_logistic5(q: Sequence[float], y: Sequence[float], maxfev: int = 20000) -> np.ndarray | None:
    """Least-squares β of :func:`vqeg_logistic5` (``scipy.optimize.curve_fit``); ``None`` when the fit fails."""
    q, y = np.asarray(q, np.float64), np.asarray(y, np.float64)
    if len(q) < 5 or q.std() == 0:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beta, _ = optimize.curve_fit(vqeg_logistic5, q, y, p0=logistic5_init(q, y), maxfev=maxfev)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return None
    return beta if np.all(np.isfinite(beta)) else None


def map_predictions(q: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, str, list[float]]:
    """Predictions mapped onto the label scale: the logistic fit, else a linear fit (``"mapping": "linear"``)."""
    q, y = np.asarray(q, np.float64), np.asarray(y, np.float64)
    beta = fit_logistic5(q, y)
    if beta is not None:
        return vqeg_logistic5(q, *beta), "logistic5", [float(b) for b in beta]
    if q.std() == 0:
        return np.full_like(y, y.mean()), "linear", [0.0, float(y.mean())]
    slope, intercept = np.polyfit(q, y, 1)
    return slope * q + intercept, "linear", [float(slope), float(intercept)]


def correlation_metrics(pred: Sequence[float], target: Sequence[float]) -> dict[str, Any]:
    """SROCC, KROCC on the raw predictions; PLCC, RMSE after the mapping (the name of the mapping is kept)."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    mapped, mapping, _ = map_predictions(pred, target)
    return {
        "srocc": srocc(pred, target),
        "krocc": krocc(pred, target),
        "plcc": plcc(mapped, target) if mapped.std() > 0 else float("nan"),
        "rmse": rmse(mapped, target),
        "mapping": mapping,
        "n": int(len(pred)),
    }


# --------------------------------------------------------------------------------------------- content ids, splits
def content_ids(names: Sequence[str], regex: str = r"^([^_]+)") -> list[str]:
    """The first group of ``regex`` in each file name (the whole stem when it does not match).

    The stereo pair ``motorcycle_left``/``motorcycle_right`` is one content.
    """
    pattern = re.compile(regex)
    out = []
    for name in names:
        stem = str(name).rsplit("/", 1)[-1]
        match = pattern.search(stem)
        content = match.group(1) if match and match.groups() else (match.group(0) if match else stem)
        out.append("motorcycle" if content.startswith("motorcycle") else content)
    return out


def content_disjoint_splits(
    groups: Sequence[str], n_splits: int = 100, test_fraction: float = 0.2, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` random (train, test) index pairs with no content id on both sides (80/20 by content)."""
    groups = np.asarray([str(g) for g in groups])
    unique = np.unique(groups)
    if len(unique) < 2:
        raise ValueError("content-disjoint splits need at least two contents")
    n_test = min(len(unique) - 1, max(1, round(test_fraction * len(unique))))
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        test_contents = rng.choice(unique, size=n_test, replace=False)
        is_test = np.isin(groups, test_contents)
        splits.append((np.flatnonzero(~is_test), np.flatnonzero(is_test)))
    return splits


def median_iqr(values: Sequence[float]) -> dict[str, float]:
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if len(values) == 0:
        return {"median": float("nan"), "q25": float("nan"), "q75": float("nan")}
    q25, med, q75 = np.percentile(values, [25, 50, 75])
    return {"median": float(med), "q25": float(q25), "q75": float(q75)}


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC (NaN when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))
