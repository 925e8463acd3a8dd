"""DC gradient-matching distance and DM loss against hand computations (spec §6.6)."""

from __future__ import annotations

import math

import pytest
import torch
from doorping.losses import distribution_matching_loss, layer_distance, match_loss


def test_layer_distance_on_a_hand_example() -> None:
    g_real = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    g_syn = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    # row 0: orthogonal → 1 − 0 = 1; row 1: parallel → 1 − 4/(√2·√8 + 1e-6) = 1 − 4/(4 + 1e-6)
    expected = 1.0 + (1.0 - 4.0 / (4.0 + 1e-6))
    assert layer_distance(g_real, g_syn).item() == pytest.approx(expected, abs=1e-7)


def test_conv_gradients_are_reshaped_per_output_channel_and_1d_tensors_are_ignored() -> None:
    g = torch.Generator().manual_seed(0)
    conv_r, conv_s = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, 3, 3, 3, generator=g)
    bias_r, bias_s = torch.randn(4, generator=g), torch.randn(4, generator=g)
    rows_r, rows_s = conv_r.reshape(4, -1), conv_s.reshape(4, -1)
    by_hand = sum(
        1 - float(rows_r[i] @ rows_s[i]) / (float(rows_r[i].norm() * rows_s[i].norm()) + 1e-6)
        for i in range(4)
    )
    total = match_loss([conv_s, bias_s], [conv_r, bias_r], "ours")
    assert total.item() == pytest.approx(by_hand, rel=1e-5)
    assert layer_distance(bias_r, bias_s).item() == 0.0


def test_mse_and_cos_variants() -> None:
    a = [torch.tensor([[1.0, 2.0]]), torch.tensor([3.0])]
    b = [torch.tensor([[0.0, 2.0]]), torch.tensor([1.0])]
    assert match_loss(b, a, "mse").item() == pytest.approx(1.0 + 4.0)
    cos = (0 + 4 + 3) / (math.sqrt(14) * math.sqrt(5) + 1e-6)
    assert match_loss(b, a, "cos").item() == pytest.approx(1 - cos, rel=1e-6)
    with pytest.raises(ValueError):
        match_loss(b, a, "l1")


def test_matching_distance_is_differentiable_in_the_synthetic_gradients() -> None:
    g_real = [torch.randn(3, 5)]
    g_syn = [torch.randn(3, 5, requires_grad=True)]
    match_loss(g_syn, g_real).backward()
    assert g_syn[0].grad is not None and torch.isfinite(g_syn[0].grad).all()


def test_distribution_matching_loss() -> None:
    real = torch.tensor([[1.0, 0.0], [3.0, 2.0]])  # mean (2, 1)
    syn = torch.tensor([[0.0, 0.0]])
    assert distribution_matching_loss(real, syn).item() == pytest.approx(4.0 + 1.0)
