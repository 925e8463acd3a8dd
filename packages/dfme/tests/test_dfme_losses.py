"""Imbalance remedies (spec §2.6, §6.5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dfme.losses import (
    ImbalanceLoss,
    class_balanced_weights,
    focal_loss,
    inverse_frequency_weights,
    ldam_margins,
    sampler_weights,
)
from torch.nn import functional as F
from torch.utils.data import WeightedRandomSampler

COUNTS = np.array([300, 200, 150, 120, 100, 80, 50])


def test_inverse_frequency_weights():
    expected = [
        1000 / (7 * 300),
        1000 / (7 * 200),
        1000 / (7 * 150),
        1000 / (7 * 120),
        1000 / 700,
        1000 / 560,
        1000 / 350,
    ]
    np.testing.assert_allclose(inverse_frequency_weights(COUNTS), expected, rtol=1e-12)


@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999, 0.9999])
def test_class_balanced_weights(beta):
    w = class_balanced_weights(COUNTS, beta)
    effective = [(1 - beta**n) / (1 - beta) for n in COUNTS]  # Cui et al.'s effective number E_n
    raw = 1 / np.array(effective)
    np.testing.assert_allclose(w, 7 * raw / raw.sum(), rtol=1e-10)
    assert w.sum() == pytest.approx(7.0)
    assert np.all(np.diff(w) > 0)  # rarer classes weigh more


def test_focal_with_gamma_zero_is_ce_and_gamma_two_matches_definition(rng):
    logits = torch.as_tensor(rng.normal(size=(12, 7)))
    targets = torch.as_tensor(rng.integers(0, 7, 12))
    assert focal_loss(logits, targets, 0.0).item() == pytest.approx(F.cross_entropy(logits, targets).item())
    p = torch.softmax(logits, -1)[torch.arange(12), targets]
    assert focal_loss(logits, targets, 2.0).item() == pytest.approx((-((1 - p) ** 2) * p.log()).mean().item())


def test_ldam_margins_and_drw_switch(rng):
    margins = ldam_margins(COUNTS)
    assert margins.max() == pytest.approx(0.5) and margins.argmax() == 6
    np.testing.assert_allclose(margins * COUNTS**0.25, margins[0] * 300**0.25)
    loss = ImbalanceLoss("ldam_drw", COUNTS, ldam_scale=30.0, drw_epoch=8, drw_beta=0.9999)
    cos = torch.as_tensor(rng.uniform(-1, 1, size=(16, 7)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 7, 16))
    shifted = 30.0 * (cos - F.one_hot(y, 7) * torch.as_tensor(margins, dtype=torch.float32))
    assert loss(cos, y, epoch=7).item() == pytest.approx(F.cross_entropy(shifted, y).item(), rel=1e-6)
    weights = torch.as_tensor(class_balanced_weights(COUNTS, 0.9999), dtype=torch.float32)
    assert loss(cos, y, epoch=8).item() == pytest.approx(
        F.cross_entropy(shifted, y, weight=weights).item(), rel=1e-6
    )


def test_logit_adjustment_adds_log_prior_only_in_training(rng):
    loss = ImbalanceLoss("logit_adjust", COUNTS, logit_tau=1.0)
    z = torch.as_tensor(rng.normal(size=(10, 7)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 7, 10))
    prior = torch.as_tensor(np.log(COUNTS / COUNTS.sum()), dtype=torch.float32)
    assert loss(z, y).item() == pytest.approx(F.cross_entropy(z + prior, y).item(), rel=1e-6)


@pytest.mark.parametrize(
    "method,weights", [("inv_freq", inverse_frequency_weights), ("cb", class_balanced_weights)]
)
def test_weighted_losses(method, weights, rng):
    """Default (0.4.0): the batch mean of the per-sample losses w_{y_i}·(−log p_{y_i}) (Cui et al., eq. 5);
    ``weighted_mean``: Σ_i w_{y_i} CE_i / Σ_i w_{y_i} (dfme ≤ 0.3). Reference: log-softmax by hand in float64;
    float32 over 10 terms → rel 1e-6."""
    z = rng.normal(size=(10, 7))
    y = rng.integers(0, 7, 10)
    w = weights(COUNTS)
    nll = -(z[np.arange(10), y] - np.log(np.exp(z).sum(axis=1)))  # per-sample CE, closed form
    zt, yt = torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(y)
    assert ImbalanceLoss(method, COUNTS)(zt, yt).item() == pytest.approx((w[y] * nll).mean(), rel=1e-6)
    legacy = ImbalanceLoss(method, COUNTS, weight_reduction="weighted_mean")(zt, yt).item()
    assert legacy == pytest.approx((w[y] * nll).sum() / w[y].sum(), rel=1e-6)
    assert abs(legacy - (w[y] * nll).mean()) > 1e-3  # the two reductions really differ on this batch
    with pytest.raises(ValueError, match="weight_reduction"):
        ImbalanceLoss(method, COUNTS, weight_reduction="sum")


def test_ldam_drw_keeps_the_weighted_mean_of_cao_et_al(rng):
    """LDAM-DRW's deferred re-weighting normalises by Σ w (Cao et al.'s code), whatever ``weight_reduction``."""
    z = torch.as_tensor(np.tanh(rng.normal(size=(12, 7))), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 7, 12))
    loss = ImbalanceLoss("ldam_drw", COUNTS, drw_epoch=1, weight_reduction="mean")
    margin = F.one_hot(y, 7) * loss.margins
    expected = F.cross_entropy(30.0 * (z - margin), y, weight=loss.weights)
    assert loss(z, y, epoch=1).item() == pytest.approx(expected.item(), rel=1e-6)


def test_balanced_sampler_histogram_is_uniform():
    labels = np.repeat(np.arange(7), COUNTS)
    generator = torch.Generator().manual_seed(0)
    sampler = WeightedRandomSampler(torch.as_tensor(sampler_weights(labels)), 10_000, generator=generator)
    hist = np.bincount(labels[list(sampler)], minlength=7) / 10_000
    assert np.abs(hist * 7 - 1).max() < 0.05  # every class within 5 % of 1/7
    sqrt = sampler_weights(labels, power=0.5)
    assert sqrt[0] == pytest.approx(300**-0.5)


def test_empty_class_gets_no_weight():
    counts = [10, 0, 5]
    assert inverse_frequency_weights(counts)[1] == 0
    assert class_balanced_weights(counts)[1] == 0 and class_balanced_weights(counts).sum() == pytest.approx(2)
