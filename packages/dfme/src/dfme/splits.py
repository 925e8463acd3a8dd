"""Subject-independent k-fold cross-validation (spec §2.8): no subject is in the training and the test set of the
same fold, and every sample is tested exactly once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def subject_folds(
    subjects: Sequence[str],
    n_folds: int = 10,
    seed: int = 0,
    stratified: bool = False,
    labels: Sequence[int] | None = None,
) -> np.ndarray:
    """Test-fold id (0..n_folds-1) of every sample.

    Default: the unique subjects (sorted) are shuffled with ``seed`` and dealt round-robin, so subject counts differ
    by at most one across folds. ``stratified=True``: scikit-learn's ``StratifiedGroupKFold`` (class balance first).
    """
    subjects = np.asarray([str(s) for s in subjects])
    unique = np.unique(subjects)
    if n_folds < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds}")
    if len(unique) < n_folds:
        raise ValueError(f"{len(unique)} subjects cannot fill {n_folds} subject-independent folds")
    if stratified:
        if labels is None:
            raise ValueError("stratified folds need the labels")
        from sklearn.model_selection import StratifiedGroupKFold

        folds = np.empty(len(subjects), dtype=np.int64)
        splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        for fold, (_, test) in enumerate(splitter.split(np.zeros(len(subjects)), labels, subjects)):
            folds[test] = fold
        return folds
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of_subject = np.empty(len(unique), dtype=np.int64)
    fold_of_subject[order] = np.arange(len(unique)) % n_folds
    return fold_of_subject[np.searchsorted(unique, subjects)]


def train_subject_subset(subjects: Sequence[str], fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask keeping the samples of a seeded ``fraction`` of the subjects (at least one subject)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    subjects = np.asarray([str(s) for s in subjects])
    unique = np.unique(subjects)
    keep = max(1, int(round(fraction * len(unique))))
    chosen = np.random.default_rng(seed).permutation(len(unique))[:keep]
    return np.isin(subjects, unique[chosen])
