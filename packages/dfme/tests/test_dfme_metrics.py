"""Metrics (spec §6.1): hand-built confusion matrices, scikit-learn equivalence, fold aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from dfme.metrics import aggregate_folds, au_scores, confusion_matrix, emotion_scores, scores_from_confusion
from sklearn.metrics import balanced_accuracy_score, f1_score


def test_hand_built_confusion_with_unpredicted_and_absent_classes():
    # 4 classes; class 2 is never predicted, class 3 never occurs in the ground truth but is predicted once.
    cm = np.array([[3, 1, 0, 0], [0, 2, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    # F1: c0 = 6/(6+1+1) = 0.75; c1 = 4/(4+2+1) = 4/7; c2 = 0 (TP 0, FN 2); c3 = 0 (FP 1) — all four count
    f1 = [0.75, 4 / 7, 0.0, 0.0]
    # recall over classes with N_i > 0: 3/4, 2/3, 0/2
    recall = [0.75, 2 / 3, 0.0]
    got = scores_from_confusion(cm)
    assert got["uf1"] == pytest.approx(np.mean(f1))
    assert got["uar"] == pytest.approx(np.mean(recall))
    assert got["acc"] == pytest.approx(5 / 9)
    zero = scores_from_confusion(cm, absent="zero")
    assert zero["uf1"] == pytest.approx(np.mean(f1))
    assert zero["uar"] == pytest.approx((0.75 + 2 / 3 + 0 + 0) / 4)


def test_class_in_neither_truth_nor_prediction_is_skipped_unless_absent_zero():
    cm = np.zeros((3, 3), int)
    cm[0, 0], cm[1, 1], cm[0, 1] = 2, 1, 1  # class 2 never appears
    f1_c0, f1_c1 = 4 / 5, 2 / 3
    assert scores_from_confusion(cm)["uf1"] == pytest.approx((f1_c0 + f1_c1) / 2)
    assert scores_from_confusion(cm, "zero")["uf1"] == pytest.approx((f1_c0 + f1_c1) / 3)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_equal_scikit_learn_on_random_label_vectors(rng):
    for _ in range(100):
        n = int(rng.integers(5, 60))
        y_true = rng.integers(0, 7, n)
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, 7, n))
        got = emotion_scores(y_true, y_pred)
        assert got["uf1"] == pytest.approx(
            f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12
        )
        assert got["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred), abs=1e-12)
        assert got["acc"] == pytest.approx(np.mean(y_true == y_pred), abs=1e-12)


def test_concatenated_and_per_fold_aggregation_differ():
    fold_a = ([0, 0, 0, 1], [0, 0, 0, 0])  # class 1 missed
    fold_b = ([1, 1], [1, 1])
    out = aggregate_folds([fold_a, fold_b], num_classes=2)
    pooled = confusion_matrix([0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1], 2)
    assert out["concatenated"] == pytest.approx(scores_from_confusion(pooled))
    per = [emotion_scores(*fold_a, 2), emotion_scores(*fold_b, 2)]
    assert out["per_fold"]["uf1"] == pytest.approx((per[0]["uf1"] + per[1]["uf1"]) / 2)
    assert out["per_fold"]["uf1"] != pytest.approx(out["concatenated"]["uf1"])


def test_au_scores_against_sklearn(rng):
    y_true = rng.random((50, 5)) < 0.3
    y_true[:, 4] = False  # an AU with no positive is left out of the macro average
    y_pred = rng.random((50, 5)) < 0.3
    got = au_scores(y_true, y_pred, ["a", "b", "c", "d", "e"])
    per = f1_score(y_true, y_pred, average=None, zero_division=0)
    assert list(got["per_au_f1"].values()) == pytest.approx(per)
    assert got["macro_f1"] == pytest.approx(per[:4].mean())
    assert got["micro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="micro", zero_division=0))
    expected_bacc = [balanced_accuracy_score(y_true[:, j], y_pred[:, j]) for j in range(4)]
    assert list(got["per_au_balanced_accuracy"].values())[:4] == pytest.approx(expected_bacc)
