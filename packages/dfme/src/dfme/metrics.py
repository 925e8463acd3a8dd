"""UF1, UAR and ACC (spec §2.8) and the AU multi-label metrics (§2.9), as pure numpy functions.

UF1 = (1/K) Σ_i 2TP_i / (2TP_i + FP_i + FN_i),  UAR = (1/K) Σ_i TP_i / N_i,  ACC = Σ_i TP_i / Σ_i N_i.

0/0 convention (``absent="skip"``, default): UF1 averages over the classes present in the ground truth or the
predictions (a class only predicted contributes F1 = 0), which equals scikit-learn's
``f1_score(average="macro", zero_division=0)``; UAR averages over the classes with N_i > 0, which equals
``balanced_accuracy_score``. ``absent="zero"`` averages over all K classes, counting empty ones as 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ABSENT = ("skip", "zero")


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = ground truth, columns = prediction."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape}, y_pred {y_pred.shape}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def scores_from_confusion(cm: np.ndarray, absent: str = "skip") -> dict[str, float]:
    """UF1, UAR, ACC of a confusion matrix."""
    if absent not in ABSENT:
        raise ValueError(f"absent must be one of {ABSENT}, got {absent!r}")
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)  # N_i
    predicted = cm.sum(axis=0)
    fp, fn = predicted - tp, support - tp
    denom_f1 = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom_f1, out=np.zeros_like(tp), where=denom_f1 > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    if absent == "zero":
        uf1, uar = float(f1.mean()), float(recall.mean())
    else:
        seen = denom_f1 > 0
        uf1 = float(f1[seen].mean()) if seen.any() else 0.0
        uar = float(recall[support > 0].mean()) if (support > 0).any() else 0.0
    total = cm.sum()
    acc = float(tp.sum() / total) if total > 0 else 0.0
    return {"uf1": uf1, "uar": uar, "acc": acc}


def emotion_scores(
    y_true: Sequence[int], y_pred: Sequence[int], num_classes: int = 7, absent: str = "skip"
) -> dict[str, float]:
    """UF1, UAR, ACC of label vectors."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, num_classes), absent)


def aggregate_folds(
    folds: Sequence[tuple[Sequence[int], Sequence[int]]], num_classes: int = 7, absent: str = "skip"
) -> dict[str, dict[str, float]]:
    """Both aggregations over cross-validation folds: ``concatenated`` (the predictions of all folds pooled into one
    confusion matrix, MEGC convention; the default of the package) and ``per_fold`` (the mean of each fold's
    scores)."""
    cms = [confusion_matrix(t, p, num_classes) for t, p in folds]
    per = [scores_from_confusion(cm, absent) for cm in cms]
    concatenated = scores_from_confusion(np.sum(cms, axis=0), absent)
    per_fold = {key: float(np.mean([s[key] for s in per])) for key in ("uf1", "uar", "acc")}
    return {"concatenated": concatenated, "per_fold": per_fold}


def au_scores(y_true: np.ndarray, y_pred: np.ndarray, au_names: Sequence[str] | None = None) -> dict:
    """Multi-label AU metrics of (N, A) binary arrays: per-AU F1 and balanced accuracy, macro-F1 over the AUs
    with at least one positive in the ground truth (the ranking metric), micro-F1."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(
            f"expected two (N, A) arrays of the same shape, got {y_true.shape} and {y_pred.shape}"
        )
    tp = (y_true & y_pred).sum(0).astype(np.float64)
    fp = (~y_true & y_pred).sum(0).astype(np.float64)
    fn = (y_true & ~y_pred).sum(0).astype(np.float64)
    tn = (~y_true & ~y_pred).sum(0).astype(np.float64)
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    tpr = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=(tp + fn) > 0)
    tnr = np.divide(tn, tn + fp, out=np.zeros_like(tp), where=(tn + fp) > 0)
    positive = (tp + fn) > 0
    micro_denom = 2 * tp.sum() + fp.sum() + fn.sum()
    names = list(au_names) if au_names is not None else [str(i) for i in range(y_true.shape[1])]
    return {
        "macro_f1": float(f1[positive].mean()) if positive.any() else 0.0,
        "micro_f1": float(2 * tp.sum() / micro_denom) if micro_denom > 0 else 0.0,
        "per_au_f1": dict(zip(names, map(float, f1), strict=True)),
        "per_au_balanced_accuracy": dict(zip(names, map(float, (tpr + tnr) / 2), strict=True)),
    }
