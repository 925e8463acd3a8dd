"""Subject-independent folds (spec §6.2)."""

from __future__ import annotations

import numpy as np
import pytest
from dfme.splits import subject_folds, train_subject_subset


@pytest.fixture
def subjects(rng):
    counts = rng.integers(3, 12, 37)
    return np.repeat([f"s{i:02d}" for i in range(37)], counts)


def test_every_sample_in_one_test_fold_and_no_subject_leak(subjects):
    folds = subject_folds(subjects, 10, seed=3)
    assert folds.shape == subjects.shape and set(folds) == set(range(10))
    for fold in range(10):
        test = set(subjects[folds == fold])
        train = set(subjects[folds != fold])
        assert not test & train
    per_fold = [len(set(subjects[folds == f])) for f in range(10)]
    assert max(per_fold) - min(per_fold) <= 1


def test_deterministic_under_seed(subjects):
    np.testing.assert_array_equal(subject_folds(subjects, 10, 7), subject_folds(subjects, 10, 7))
    assert not np.array_equal(subject_folds(subjects, 10, 7), subject_folds(subjects, 10, 8))


def test_stratified_mode_is_subject_independent(subjects, rng):
    labels = rng.integers(0, 7, len(subjects))
    folds = subject_folds(subjects, 5, 0, stratified=True, labels=labels)
    for fold in range(5):
        assert not set(subjects[folds == fold]) & set(subjects[folds != fold])


def test_too_few_subjects_is_an_error():
    with pytest.raises(ValueError, match="3 subjects cannot fill 10"):
        subject_folds(["a", "b", "c"], 10)


def test_subject_subset_keeps_whole_subjects(subjects):
    keep = train_subject_subset(subjects, 0.25, seed=0)
    kept = set(subjects[keep])
    assert len(kept) == round(0.25 * 37)
    assert all(keep[subjects == s].all() for s in kept)
