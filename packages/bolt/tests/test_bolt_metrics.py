"""Metrics against sklearn and closed forms (spec §6 item 6)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from bolt_ssl.metrics import auc_ovr, classification_metrics, macro_f1, qwk, qwk_from_confusion
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score


def softmax_rows(n: int, c: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(n, c))
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("task", ["multiclass", "ordinal"])
def test_single_label_metrics_equal_sklearn(task):
    prob = softmax_rows(60, 5, 0)
    y = np.random.default_rng(1).integers(0, 5, 60)
    got = classification_metrics(y, prob, task, 5)
    pred = prob.argmax(1)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-9)
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0), abs=1e-9)
    assert got["auc_ovr"] == pytest.approx(
        roc_auc_score(y, prob, multi_class="ovr", average="macro"), abs=1e-9
    )
    if task == "ordinal":
        assert got["qwk"] == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"), abs=1e-9)
    else:
        assert got["qwk"] is None


def test_binary_metrics_use_the_positive_class():
    prob = softmax_rows(40, 2, 2)
    y = np.random.default_rng(3).integers(0, 2, 40)
    got = classification_metrics(y, prob, "binary", 2)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, prob[:, 1] > 0.5), abs=1e-9)
    assert got["auc_ovr"] == pytest.approx(roc_auc_score(y, prob[:, 1]), abs=1e-9)
    assert got["macro_f1"] == pytest.approx(f1_score(y, prob[:, 1] > 0.5, average="macro"), abs=1e-9)


def test_multilabel_metrics_are_per_label_means():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, (50, 14))
    prob = rng.random((50, 14))
    got = classification_metrics(y, prob, "multilabel", 14)
    assert got["accuracy"] == pytest.approx(((prob > 0.5) == y).mean(), abs=1e-9)
    assert got["auc_ovr"] == pytest.approx(
        np.mean([roc_auc_score(y[:, j], prob[:, j]) for j in range(14)]), abs=1e-9
    )
    assert got["macro_f1"] == pytest.approx(
        np.mean([f1_score(y[:, j], prob[:, j] > 0.5, zero_division=0) for j in range(14)]), abs=1e-9
    )
    assert got["balanced_accuracy"] is None


def test_medmnist_auc_is_the_mean_of_per_class_one_vs_rest():
    prob = softmax_rows(80, 4, 5)
    y = np.random.default_rng(6).integers(0, 4, 80)
    per_class = np.mean([roc_auc_score(y == c, prob[:, c]) for c in range(4)])
    assert auc_ovr(y, prob, "multiclass") == pytest.approx(per_class, abs=1e-12)


def test_qwk_equals_the_closed_form_on_a_hand_made_confusion_matrix():
    confusion = np.array([[10, 2, 1], [3, 8, 2], [0, 4, 6]])
    y = np.repeat(np.arange(3), confusion.sum(axis=1))
    pred = np.concatenate([np.repeat(np.arange(3), row) for row in confusion])
    onehot = np.eye(3)[pred]
    assert qwk_from_confusion(confusion) == pytest.approx(
        cohen_kappa_score(y, pred, weights="quadratic"), abs=1e-12
    )
    assert qwk(y, onehot) == pytest.approx(qwk_from_confusion(confusion), abs=1e-12)


def test_undefined_cases_warn_and_give_nan():
    y = np.zeros(10, dtype=int)
    prob = np.tile([0.9, 0.05, 0.05], (10, 1))
    with pytest.warns(RuntimeWarning, match="QWK undefined"):
        assert np.isnan(qwk(y, prob))
    with pytest.warns(RuntimeWarning, match="AUC undefined"):
        assert np.isnan(auc_ovr(y, prob, "multiclass"))


def test_macro_f1_counts_never_predicted_classes_as_zero():
    y = np.array([0, 1, 2, 2])
    prob = np.eye(3)[[0, 0, 2, 2]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = macro_f1(y, prob, "multiclass", 3)
    assert value == pytest.approx(f1_score(y, [0, 0, 2, 2], average="macro", zero_division=0), abs=1e-12)
