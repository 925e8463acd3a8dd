"""Evaluation protocols (spec §2.9, §6.10–6.11, §6.14): detector AUC/accuracy per PEA, spatial monotonicity and
cross-talk, temporal AUCs with the equal-quality and blur-only controls, and the fusion's content-disjoint CV."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sstam.metrics import (
    content_disjoint_splits,
    correlation_metrics,
    median_iqr,
    roc_auc,
    spearman_exact,
)
from sstam.synth import SPATIAL_PEAS, TEMPORAL_PEAS, num_levels


def head_metrics(
    probs: np.ndarray, labels: np.ndarray, heads: Sequence[str], prefix: str
) -> dict[str, float]:
    """ROC AUC and accuracy at 0.5 per head over its labelled samples (label ≥ 0)."""
    out: dict[str, float] = {}
    aucs = []
    for k, head in enumerate(heads):
        keep = labels[:, k] >= 0
        y, p = labels[keep, k], probs[keep, k]
        auc = roc_auc(y, p)
        out[f"{prefix}/{head}_auc"] = auc
        out[f"{prefix}/{head}_acc"] = float(((p > 0.5) == (y > 0.5)).mean()) if len(y) else float("nan")
        if np.isfinite(auc):
            aucs.append(auc)
    out[f"{prefix}/{'spatial' if heads == SPATIAL_PEAS else 'temporal'}_auc_mean"] = (
        float(np.mean(aucs)) if aucs else float("nan")
    )
    return out


def monotonicity_matrix(
    probs: np.ndarray, pea: np.ndarray, level: np.ndarray
) -> tuple[np.ndarray, list[list[float]]]:
    """``M[k, j]`` = Spearman(mean p^j over generator k's samples at each level, level), level 0 = the clean
    samples; also the per-level mean intensities ``I[k][l][j]``."""
    clean = pea == -1
    matrix = np.full((len(SPATIAL_PEAS), len(SPATIAL_PEAS)), np.nan)
    curves: list[list[float]] = []
    for k, name in enumerate(SPATIAL_PEAS):
        levels, means = [], []
        for lv in range(num_levels(name)):
            keep = clean if lv == 0 else (pea == k) & (level == lv)
            if keep.any():
                levels.append(lv)
                means.append(probs[keep].mean(axis=0))
        curves.append([list(map(float, m)) for m in means])
        if len(levels) >= 3:
            values = np.stack(means)
            for j in range(len(SPATIAL_PEAS)):
                if np.ptp(values[:, j]) > 0:
                    matrix[k, j] = spearman_exact(levels, values[:, j])
                else:
                    matrix[k, j] = 0.0
    return matrix, curves


def spatial_detector_metrics(
    probs: np.ndarray, labels: np.ndarray, pea: np.ndarray, level: np.ndarray, prefix: str = "test"
) -> dict[str, float]:
    """Head AUC/accuracy, own-severity Spearman per PEA and the cross-talk summary (spec §6.10)."""
    out = head_metrics(probs, labels, SPATIAL_PEAS, prefix)
    matrix, _ = monotonicity_matrix(probs, pea, level)
    for k, name in enumerate(SPATIAL_PEAS):
        out[f"{prefix}/{name}_monotonicity"] = float(matrix[k, k])
    off = matrix[~np.eye(len(SPATIAL_PEAS), dtype=bool)]
    off = off[np.isfinite(off)]
    out[f"{prefix}/crosstalk_mean"] = float(off.mean()) if len(off) else float("nan")
    out[f"{prefix}/crosstalk_max"] = float(off.max()) if len(off) else float("nan")
    return out


def temporal_detector_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    kinds: np.ndarray,
    levels: np.ndarray,
    kind_names: Sequence[str],
    prefix: str = "test",
) -> dict[str, float]:
    """Flickering/floating AUC, flicker vs its equal-mean-quality control, and the blur-only distractor (spec
    §6.11: AUC of blur-only vs clean clips, expected 0.5 ± 0.15 for both heads)."""
    out = head_metrics(probs, labels, TEMPORAL_PEAS, prefix)
    names = np.asarray(kind_names)[kinds] if len(kind_names) else np.asarray([""] * len(kinds))

    def pair_auc(pos: str, neg: str, head: int) -> float:
        keep = np.isin(names, [pos, neg])
        return roc_auc((names[keep] == pos).astype(int), probs[keep, head])

    out[f"{prefix}/flickering_auc_equal_quality"] = pair_auc("flicker_quant", "constant_quant", 0)
    out[f"{prefix}/flickering_auc_gain"] = pair_auc("flicker_gain", "constant_gain", 0)
    out[f"{prefix}/floating_auc_drift"] = pair_auc("floating_drift", "floating_consistent", 1)
    for k, head in enumerate(TEMPORAL_PEAS):
        out[f"{prefix}/{head}_blur_auc"] = pair_auc("blur_only", "clean", k)
    return out


def fusion_cv(
    x: np.ndarray,
    y: Sequence[float],
    groups: Sequence[str],
    kind: str = "svr",
    features: str = "all",
    score_direction: str = "higher_better",
    n_splits: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Median and IQR of SROCC/KROCC/PLCC/RMSE over content-disjoint 80/20 splits (spec §2.9).

    Predictions are higher-is-better; with ``lower_better`` labels (DMOS) the correlations are negative.
    """
    from sstam.fusion import fit_fusion

    y = np.asarray(y, np.float64)
    results: dict[str, list[float]] = {"srocc": [], "krocc": [], "plcc": [], "rmse": []}
    mappings = []
    for train, test in content_disjoint_splits(groups, n_splits, 0.2, seed):
        if len(test) < 3:
            continue
        fusion, _ = fit_fusion(x[train], y[train], np.asarray(groups)[train], kind, features, score_direction)
        pred = fusion.predict(x[test])
        if np.std(pred) == 0 or np.std(y[test]) == 0:
            continue
        metrics = correlation_metrics(pred, y[test])
        mappings.append(metrics["mapping"])
        for key in results:
            results[key].append(metrics[key])
    out: dict[str, Any] = {"splits": len(results["srocc"])}
    for key, values in results.items():
        summary = median_iqr(values)
        out[key] = summary["median"]
        out[f"{key}_q25"] = summary["q25"]
        out[f"{key}_q75"] = summary["q75"]
    out["mapping_linear_fraction"] = (
        float(np.mean([m == "linear" for m in mappings])) if mappings else float("nan")
    )
    return out
