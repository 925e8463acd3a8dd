"""Benchmark metrics (spec §2.9): mIoU over learning classes 1..19 (ignore 0), SemanticKITTI-C RmIoU and mR, and
Robo3D mCE and mRR. Pure numpy; the published test vectors ship as package data (``assets/*.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources

import numpy as np

NUM_CLASSES = 20
ABSENT = ("nan", "zero")

#: SemanticKITTI-C: corruption type → its subsets (2DPASS's ``semantickittic.yaml``)
SKC_TYPES: dict[str, tuple[str, ...]] = {
    "fog": ("fog_light", "fog_moderate", "fog_heavy"),
    "snow": ("snowfall_light", "snowfall_moderate", "snowfall_heavy"),
    "global": ("global_light", "global_moderate", "global_heavy"),
    "local": ("local_light", "local_moderate", "local_heavy"),
    "32beam": ("dense_32beam", "sparse_32beam"),
    "16beam": ("dense_16beam", "sparse_16beam"),
}
ROBO3D_TYPES = ("fog", "wet_ground", "snow", "motion_blur", "beam_missing", "crosstalk", "incomplete_echo",
                "cross_sensor")  # fmt: skip
LEVELS = ("light", "moderate", "heavy")


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(C, C) counts, rows = target, columns = prediction; points with target 0 are dropped."""
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    keep = target != 0
    index = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: np.ndarray, absent: str = "nan") -> np.ndarray:
    """IoU_c = TP/(TP + FP + FN) for classes 1..19; absent classes (TP + FP + FN = 0) → NaN or 0."""
    if absent not in ABSENT:
        raise ValueError(f"absent must be one of {ABSENT}, got {absent!r}")
    confusion = np.asarray(confusion, dtype=np.float64)[1:, 1:]
    tp = np.diag(confusion)
    denominator = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / denominator
    iou[denominator == 0] = np.nan if absent == "nan" else 0.0
    return iou


def miou(confusion: np.ndarray, absent: str = "nan") -> float:
    """Mean IoU over classes 1..19 (``nanmean`` for the 2DPASS convention)."""
    iou = iou_per_class(confusion, absent)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def skc_summary(subset_miou: Mapping[str, float], clean: float) -> dict[str, float]:
    """Per-type mIoU (mean of its levels), R_t = mIoU_t/clean·100, RmIoU = mean mIoU_t, mR = mean R_t."""
    out: dict[str, float] = {"clean": float(clean)}
    per_type, ratios = [], []
    for name, subsets in SKC_TYPES.items():
        value = float(np.mean([subset_miou[s] for s in subsets]))
        out[f"{name}_miou"] = value
        out[f"{name}_r"] = value / clean * 100.0
        per_type.append(value)
        ratios.append(value / clean * 100.0)
    out["rmiou"] = float(np.mean(per_type))
    out["mr"] = float(np.mean(ratios))
    return out


def robo3d_summary(
    miou_by_level: Mapping[str, Sequence[float]], clean: float, baseline: Mapping[str, Sequence[float]]
) -> dict[str, float]:
    """CE_i = Σ_l(1 − mIoU_il)/Σ_l(1 − mIoU^base_il), RR_i = Σ_l mIoU_il/(3·clean); mCE, mRR their means (in %).

    mIoUs in percent."""
    out: dict[str, float] = {}
    ce, rr = [], []
    for name in ROBO3D_TYPES:
        if name not in miou_by_level:
            continue
        ours = np.asarray(miou_by_level[name], dtype=np.float64) / 100.0
        base = np.asarray(baseline[name], dtype=np.float64) / 100.0
        ce_i = (1.0 - ours).sum() / (1.0 - base).sum() * 100.0
        rr_i = ours.sum() / (len(ours) * clean / 100.0) * 100.0
        out[f"{name}_ce"], out[f"{name}_rr"] = float(ce_i), float(rr_i)
        ce.append(ce_i)
        rr.append(rr_i)
    out["mce"], out["mrr"] = float(np.mean(ce)), float(np.mean(rr))
    return out


def published(name: str) -> dict:
    """Published tables shipped with the package: ``semantickitti_c`` (paper v1) and ``robo3d`` (mIoU vectors)."""
    text = resources.files("lidar_robust").joinpath("assets", f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)
