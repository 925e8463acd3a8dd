"""Neural Cleanse, STRIP, fine-pruning and the range check (spec §6.14, §6.15)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from doorping.defences import (
    CostSchedule,
    anomaly_index,
    channel_activity,
    fine_prune,
    fine_tune,
    neural_cleanse,
    out_of_range,
    prediction_entropy,
    prune_channels,
    strip_detect,
    strip_entropy,
)
from doorping.networks import build_network, last_conv_index


def test_anomaly_index_is_the_mad_formula_on_a_hand_made_list() -> None:
    l1 = np.array([10.0, 11.0, 9.0, 10.5, 2.0, 9.5, 10.0, 30.0])
    median = 10.0  # sorted: 2, 9, 9.5, 10, 10, 10.5, 11, 30
    deviations = np.abs(l1 - median)  # 0, 1, 1, 0.5, 8, 0.5, 0, 20 → median 0.75
    mad = 1.4826 * 0.75
    index, flagged = anomaly_index(l1)
    assert index == pytest.approx(abs(2.0 - median) / mad)
    assert np.median(deviations) == 0.75
    # one-sided rule: label 7 (L1 30) deviates by 20/MAD > 2 but lies above the median → not flagged
    assert flagged == [4]


def test_cost_schedule_follows_the_reference_on_a_scripted_sequence() -> None:
    s = CostSchedule(init_cost=1e-3, patience=2, multiplier=2.0)
    # two successes with λ = 0 set λ = init_cost; two more successes double it; two failures divide by 2^1.5
    costs = [s.update(x) for x in (1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.2, 1.0, 1.0)]
    assert costs[:2] == [0.0, 1e-3]
    assert costs[3] == pytest.approx(2e-3)
    assert costs[5] == pytest.approx(2e-3 / 2**1.5)
    assert costs[6] == pytest.approx(2e-3 / 2**1.5)  # the failure counter restarted
    assert costs[8] == pytest.approx(2e-3 / 2**1.5 * 2)
    assert s.up_flag and s.down_flag
    below = CostSchedule(patience=3)
    assert [below.update(x) for x in (0.98, 0.99, 0.99)] == [0.0, 0.0, 0.0]


def test_strip_entropy_extremes_and_threshold() -> None:
    assert prediction_entropy(torch.full((1, 10), 0.1)).item() == pytest.approx(math.log2(10), rel=1e-6)
    assert prediction_entropy(torch.eye(10)[:1]).item() == pytest.approx(0.0, abs=1e-9)
    clean_def = torch.arange(1, 101, dtype=torch.float32)  # 1 … 100
    result = strip_detect(clean_def, torch.tensor([0.5, 50.0]), torch.tensor([0.1, 80.0, 1.5]))
    assert result["threshold"] == pytest.approx(float(torch.quantile(clean_def, 0.01)))
    assert result["far"] == pytest.approx(1 / 3)  # only 80 ≥ threshold ≈ 1.99 escapes
    assert result["frr"] == pytest.approx(0.5)


class Blend(torch.nn.Module):
    """A model whose prediction is confident for bright bottom-right corners: low STRIP entropy there."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[:, 0, -2:, -2:].mean((1, 2))
        logits = torch.zeros(len(x), 10)
        logits[:, 0] = corner * 10
        return logits


def test_strip_separates_a_dominant_trigger() -> None:
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(20, 1, 4, 4, generator=g) * 0.1
    triggered = pool[:5].clone()
    triggered[:, 0, -2:, -2:] = 10.0
    h_clean = strip_entropy(Blend(), pool[5:10], pool, n_blend=8)
    h_trig = strip_entropy(Blend(), triggered, pool, n_blend=8)
    assert (h_trig < 0.1).all() and (h_clean > 3.0).all()


def test_fine_pruning_prunes_in_ascending_activation_and_pruned_channels_output_zero(digits) -> None:
    net = build_network("toy", 1, 10, (8, 8), seed=0)
    x, y = digits.test_x[:60], digits.test_y[:60]
    conv = last_conv_index(net)
    activity = channel_activity(net, conv, x)
    result = fine_prune(net, x, y, max_acc_drop=1.0, prune_ratio_max=0.5)  # accuracy never stops it
    assert result["pruned"] == 16
    assert result["order"] == torch.argsort(activity)[:16].tolist()
    assert (channel_activity(net, conv, x)[result["order"]] == 0).all()
    out = net[conv](net[:conv](x))
    assert (out[:, result["order"]] == 0).all()  # exactly 0 before the ReLU too
    fine_tune(net, conv, result["order"], x, y, epochs=2)
    assert (net[conv](net[:conv](x))[:, result["order"]] == 0).all()  # still pruned after fine-tuning
    prune_channels(net, conv, torch.tensor([0]))
    assert (net[conv].weight[0] == 0).all()


def test_fine_pruning_stops_before_the_accuracy_drop(digits) -> None:
    net = build_network("toy", 1, 10, (8, 8), seed=0)
    x, y = digits.test_x[:60], digits.test_y[:60]
    result = fine_prune(net, x, y, max_acc_drop=0.0)
    base = result["curve"][0][1]
    assert all(acc >= base for _, acc in result["curve"][1 : result["pruned"] + 1])


def test_range_check_flags_values_outside_the_valid_box() -> None:
    mean, std = torch.tensor([0.5]).view(1, 1, 1), torch.tensor([0.5]).view(1, 1, 1)  # box [−1, 1]
    x = torch.zeros(3, 1, 2, 2)
    x[1, 0, 0, 0] = 1.0005  # within tolerance
    x[2, 0, 1, 1] = -1.01
    assert out_of_range(x, mean, std).tolist() == [False, False, True]


def test_neural_cleanse_runs_for_all_labels_at_once(digits) -> None:
    net = build_network("toy", 1, 10, (8, 8), seed=0)
    mean, std = digits.mean_std(digits.test_x)
    result = neural_cleanse(net, digits.test_x[:40], mean, std, 10, epochs=2, batches=2)
    assert len(result["l1"]) == 10 and result["masks"].shape == (10, 1, 8, 8)
    assert all(0 < v <= 64 for v in result["l1"])
    assert all(p.requires_grad for p in net.parameters())  # the model is left trainable
