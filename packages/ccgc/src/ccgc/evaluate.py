"""Clustering metrics (official ``eva``, spec §2.8) and the best / best_trained / last protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, f1_score, normalized_mutual_info_score

METRICS = ("acc", "nmi", "ari", "f1")


def _as_int_array(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values.cpu() if hasattr(values, "cpu") else values).reshape(-1)
    if arr.dtype.kind not in "iu":
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name}: expected integer labels")
        arr = arr.astype(np.int64)
    return arr


def hungarian_mapping(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Map predicted clusters to classes by maximum matching on the (rectangular) contingency matrix.

    Predicted clusters left unmatched (more clusters than classes) map to −1, i.e. count as errors.
    """
    classes, true_idx = np.unique(y_true, return_inverse=True)
    clusters, pred_idx = np.unique(y_pred, return_inverse=True)
    contingency = np.zeros((clusters.size, classes.size), dtype=np.int64)
    np.add.at(contingency, (pred_idx, true_idx), 1)
    rows, cols = linear_sum_assignment(-contingency)
    lookup = np.full(clusters.size, -1, dtype=np.int64)
    lookup[rows] = classes[cols]
    return lookup[pred_idx]


def cluster_acc(y_true: Any, y_pred: Any) -> float:
    """Accuracy (×100) after Hungarian matching of clusters to classes."""
    t, p = _as_int_array(y_true, "y_true"), _as_int_array(y_pred, "y_pred")
    return float(100.0 * np.mean(hungarian_mapping(t, p) == t))


def clustering_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """ACC, NMI (arithmetic), ARI and macro-F1 after the ACC mapping, all ×100 (official ``eva``)."""
    t, p = _as_int_array(y_true, "y_true"), _as_int_array(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length: {t.size} vs {p.size}")
    mapped = hungarian_mapping(t, p)
    return {
        "acc": float(100.0 * np.mean(mapped == t)),
        "nmi": float(100.0 * normalized_mutual_info_score(t, p, average_method="arithmetic")),
        "ari": float(100.0 * adjusted_rand_score(t, p)),
        "f1": float(100.0 * f1_score(t, mapped, labels=np.unique(t), average="macro", zero_division=0)),
    }


@dataclass
class ProtocolTracker:
    """Keeps the candidates of one run and answers the three protocols of spec §2.8.

    ``best``: highest ACC over the pre-training k-means and every re-clustering, ties (>=) to the later one
    (official). ``best_trained``: the same without the pre-training candidate. ``last``: after the final epoch.
    """

    candidates: list[dict[str, Any]] = field(default_factory=list)
    last: dict[str, Any] | None = None

    def add(self, epoch: int, metrics: dict[str, float], pretrain: bool = False) -> None:
        self.candidates.append({"epoch": epoch, "pretrain": pretrain, **metrics})

    @staticmethod
    def _best(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
        best = None
        for cand in candidates:
            if best is None or cand["acc"] >= best["acc"]:
                best = cand
        return best

    @property
    def best(self) -> dict[str, Any] | None:
        return self._best(self.candidates)

    @property
    def best_trained(self) -> dict[str, Any] | None:
        return self._best([c for c in self.candidates if not c["pretrain"]])

    def summary(self) -> dict[str, Any]:
        return {"best": self.best, "best_trained": self.best_trained, "last": self.last}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and population std (ddof 0, as the official ``np.std``) of each metric over runs."""
    out: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        values = np.array([r[metric] for r in runs if r is not None], dtype=np.float64)
        if values.size:
            out[metric] = {"mean": float(values.mean()), "std": float(values.std())}
    return out
