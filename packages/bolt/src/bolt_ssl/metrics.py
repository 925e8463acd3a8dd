"""Downstream metrics (spec §2.9) as pure numpy functions of labels and class probabilities.

Tasks: ``multiclass`` and ``ordinal`` (argmax of softmax rows), ``binary`` (2 columns, positive = last),
``multilabel`` ((N, L) 0/1 labels, per-label probabilities; MedMNIST conventions).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, f1_score, roc_auc_score

TASKS = ("multiclass", "ordinal", "binary", "multilabel")


def predictions(prob: np.ndarray, task: str) -> np.ndarray:
    """Argmax for single-label tasks (binary: p[:, −1] > 0.5), per-label p > 0.5 for multi-label."""
    prob = np.asarray(prob, dtype=np.float64)
    if task == "multilabel":
        return (prob > 0.5).astype(np.int64)
    if task == "binary":
        return (prob[:, -1] > 0.5).astype(np.int64)
    return prob.argmax(axis=1)


def accuracy(y: np.ndarray, prob: np.ndarray, task: str) -> float:
    """Fraction correct; multi-label: mean per-label accuracy at 0.5 (MedMNIST's getACC)."""
    pred = predictions(prob, task)
    return float((pred == np.asarray(y).reshape(pred.shape)).mean())


def macro_f1(y: np.ndarray, prob: np.ndarray, task: str, n_classes: int | None = None) -> float:
    """Macro-F1 with zero_division=0 (a never-predicted class scores 0); multi-label: mean per-label F1."""
    pred = predictions(prob, task)
    y = np.asarray(y)
    if task == "multilabel":
        return float(np.mean([f1_score(y[:, j], pred[:, j], zero_division=0) for j in range(y.shape[1])]))
    labels = np.arange(n_classes if n_classes is not None else np.asarray(prob).shape[1])
    return float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))


def balanced_accuracy(y: np.ndarray, prob: np.ndarray, task: str) -> float | None:
    if task == "multilabel":
        return None
    return float(balanced_accuracy_score(y, predictions(prob, task)))


def _binary_auc(y: np.ndarray, score: np.ndarray, what: str) -> float:
    if np.unique(y).size < 2:
        warnings.warn(f"AUC undefined: {what} has only one class in y_true", RuntimeWarning, stacklevel=3)
        return float("nan")
    return float(roc_auc_score(y, score))


def auc_ovr(y: np.ndarray, prob: np.ndarray, task: str) -> float:
    """Unweighted mean of one-vs-rest AUCs (= sklearn's ``multi_class="ovr", average="macro"`` on softmax rows);
    binary: AUC of the positive-class probability; multi-label: mean per-label AUC. NaN (with a warning) when a
    class is absent from y."""
    prob = np.asarray(prob, dtype=np.float64)
    y = np.asarray(y)
    if task == "binary":
        return _binary_auc(y, prob[:, -1], "the positive class")
    if task == "multilabel":
        return float(np.mean([_binary_auc(y[:, j], prob[:, j], f"label {j}") for j in range(y.shape[1])]))
    per_class = [_binary_auc((y == c).astype(int), prob[:, c], f"class {c}") for c in range(prob.shape[1])]
    return float(np.mean(per_class))


def qwk(y: np.ndarray, prob: np.ndarray) -> float:
    """Quadratic-weighted kappa of argmax predictions; NaN (with a warning) when y and ŷ are both constant."""
    y = np.asarray(y).reshape(-1)
    pred = np.asarray(prob).argmax(axis=1)
    if np.unique(y).size == 1 and np.unique(pred).size == 1:
        warnings.warn("QWK undefined: labels and predictions are both constant", RuntimeWarning, stacklevel=2)
        return float("nan")
    return float(cohen_kappa_score(y, pred, weights="quadratic"))


def qwk_from_confusion(confusion: np.ndarray) -> float:
    """Closed form κ = 1 − Σ w_ij O_ij / Σ w_ij E_ij, w_ij = (i − j)²/(C − 1)², E = outer marginals / total."""
    o = np.asarray(confusion, dtype=np.float64)
    c = o.shape[0]
    i, j = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
    w = (i - j) ** 2 / (c - 1) ** 2
    e = np.outer(o.sum(axis=1), o.sum(axis=0)) / o.sum()
    return float(1.0 - (w * o).sum() / (w * e).sum())


def classification_metrics(
    y: np.ndarray, prob: np.ndarray, task: str, n_classes: int | None = None
) -> dict[str, float | None]:
    """accuracy, macro_f1, auc_ovr, qwk (ordinal tasks only, else None), balanced_accuracy."""
    if task not in TASKS:
        raise ValueError(f"task {task!r}: expected one of {', '.join(TASKS)}")
    return {
        "accuracy": accuracy(y, prob, task),
        "macro_f1": macro_f1(y, prob, task, n_classes),
        "auc_ovr": auc_ovr(y, prob, task),
        "qwk": qwk(y, prob) if task == "ordinal" else None,
        "balanced_accuracy": balanced_accuracy(y, prob, task),
    }
