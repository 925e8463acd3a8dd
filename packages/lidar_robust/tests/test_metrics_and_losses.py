from __future__ import annotations

import numpy as np
import pytest
import torch
from lidar_robust.losses import lovasz_softmax, segmentation_loss
from lidar_robust.metrics import (
    SKC_TYPES,
    confusion_matrix,
    iou_per_class,
    miou,
    published,
    robo3d_summary,
    skc_summary,
)


def test_miou_hand_computed_three_scans():
    # classes 1, 2, 3; label 0 ignored; accumulated over three "scans"
    scans = [
        (np.array([1, 1, 2, 3, 5]), np.array([1, 1, 2, 2, 0])),
        (np.array([2, 2, 1]), np.array([2, 2, 2])),
        (np.array([3, 3, 1]), np.array([3, 1, 1])),
    ]
    confusion = sum(confusion_matrix(p, t) for p, t in scans)
    # class 1: TP 3, FP 1 (pred 1 on target 2), FN 1 (target 1 pred 3) → 3/5
    # class 2: TP 3, FP 0, FN 2 → 3/5 ; class 3: TP 1, FP 2, FN 0 → 1/3
    iou = iou_per_class(confusion)
    assert iou[:3] == pytest.approx([3 / 5, 3 / 5, 1 / 3])
    assert miou(confusion) == pytest.approx((3 / 5 + 3 / 5 + 1 / 3) / 3)
    assert miou(confusion, absent="zero") == pytest.approx((3 / 5 + 3 / 5 + 1 / 3) / 19)
    assert np.isnan(iou[5])


def test_paper_arithmetic_reproduces_every_row():
    table = published("semantickitti_c")["methods"]
    assert len(table) == 12
    for name, row in table.items():
        per_subset = {}
        for kind, subsets in SKC_TYPES.items():
            for s in subsets:
                per_subset[s] = row[f"{kind}_miou"]
        summary = skc_summary(per_subset, row["clean"])
        assert abs(summary["rmiou"] - row["rmiou"]) <= 0.1, name
        assert abs(summary["mr"] - row["mr"]) <= 0.1, name


def test_robo3d_published_vectors():
    methods = published("robo3d")["methods"]
    base = methods["MinkUNet-18"]["levels"]
    squeeze = robo3d_summary(methods["SqueezeSeg"]["levels"], methods["SqueezeSeg"]["clean"], base)
    assert squeeze["mce"] == pytest.approx(164.87, abs=0.01)
    assert squeeze["mrr"] == pytest.approx(66.81, abs=0.01)
    assert squeeze["fog_ce"] == pytest.approx(183.9, abs=0.05)
    mink = robo3d_summary(base, methods["MinkUNet-18"]["clean"], base)
    assert mink["mce"] == pytest.approx(100.0, abs=1e-9)
    assert mink["mrr"] == pytest.approx(81.90, abs=0.01)


def _jaccard_loss(pred: np.ndarray, truth: np.ndarray) -> float:
    union = (pred | truth).sum()
    return 1.0 - (pred & truth).sum() / union if union else 0.0


def test_lovasz_equals_jaccard_loss_on_hard_predictions():
    """On one-hot probabilities the Lovász extension equals 1 − IoU per present class (Berman et al., Prop. 1)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(1, 4, 30)
        pred = rng.integers(1, 4, 30)
        probs = torch.nn.functional.one_hot(torch.from_numpy(pred), 4).double()
        loss = lovasz_softmax(probs, torch.from_numpy(labels))
        expected = np.mean([_jaccard_loss(pred == c, labels == c) for c in np.unique(labels)])
        assert float(loss) == pytest.approx(expected, abs=1e-12)


def test_lovasz_brute_force_extension_on_soft_errors():
    """Lovász extension = Σ_i e_(i) (J(S_i) − J(S_{i−1})) over the decreasing error order: brute force over sets."""
    rng = np.random.default_rng(1)
    probs = torch.from_numpy(rng.dirichlet(np.ones(3), size=7))
    labels = torch.from_numpy(rng.integers(1, 3, 7))
    total = []
    for c in torch.unique(labels).tolist():
        truth = (labels == c).numpy()
        errors = np.abs(truth - probs[:, c].numpy())
        order = np.argsort(-errors, kind="stable")
        value, previous = 0.0, 0.0
        for k in range(1, len(order) + 1):
            chosen = np.zeros(len(order), bool)
            chosen[order[:k]] = True  # the k largest errors are "wrong"
            inter = (truth & ~chosen).sum()
            union = truth.sum() + (~truth & chosen).sum()
            jac = 1 - inter / union
            value += errors[order[k - 1]] * (jac - previous)
            previous = jac
        total.append(value)
    assert float(lovasz_softmax(probs, labels)) == pytest.approx(np.mean(total), abs=1e-12)


def test_segmentation_loss_ignores_class_zero():
    logits = torch.randn(6, 20, requires_grad=True)
    labels = torch.tensor([0, 0, 3, 3, 5, 0])
    loss = segmentation_loss(logits, labels)
    loss.backward()
    assert torch.all(logits.grad[labels == 0] == 0)
    assert segmentation_loss(logits, torch.zeros(6, dtype=torch.long)).item() == 0.0
