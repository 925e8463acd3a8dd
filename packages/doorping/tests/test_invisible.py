"""INVISIBLE: the package default vs the official objective and re-poisoning (spec §6.13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from doorping.config import TriggerConfig
from doorping.networks import build_network
from doorping.neurons import PrefixActivation, invisible_fit, select_neurons, update_invisible_trigger
from doorping.poison import AttackState


def _read():
    net = build_network("toy", 1, 10, (8, 8), seed=0).eval()
    read = PrefixActivation(net, -2)
    neurons = select_neurons(read.module, 1)
    with torch.no_grad():
        read.module.bias[neurons] += 1.0  # the selected neuron is active
    t = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert read(t)[:, neurons].item() > 0.1
    return read, t, neurons


@pytest.mark.parametrize(("detach", "direction"), [(True, 1.0), (False, -1.0)])
def test_default_raises_the_activation_and_the_official_objective_lowers_it(
    detach: bool, direction: float
) -> None:
    read, t0, neurons = _read()
    t = t0.clone().requires_grad_(True)
    before = read(t0)[:, neurons].item()
    tiny_std = torch.full((1, 1, 1), 1e-3)  # τ = 1/min σ = 1000: the regulariser is inactive
    update_invisible_trigger(read, t, neurons, tiny_std, scale=10.0, lr=0.01, steps=1, detach_target=detach)
    after = read(t.detach())[:, neurons].item()
    assert (after - before) * direction > 0


def test_official_fit_has_the_gradient_of_scaled_mean_square() -> None:
    a = torch.tensor([[0.5, 2.0, -1.0]], requires_grad=True)
    (g1,) = torch.autograd.grad(invisible_fit(a, 10.0, None), a)
    (g2,) = torch.autograd.grad((10.0 - 1) ** 2 * (a**2).mean(), a)
    assert torch.allclose(g1, g2)
    (g3,) = torch.autograd.grad(invisible_fit(a, 10.0, 10.0 * a.detach()), a)
    assert torch.allclose(g3, 2 * (a.detach() - 10 * a.detach()) / 3)


@pytest.mark.parametrize("legacy", [False, True])
def test_repoisoning_accumulates_only_under_the_legacy_flag(digits, legacy: bool) -> None:
    state = AttackState(digits, "invisible", TriggerConfig(legacy_invisible=legacy), np.random.default_rng(0))
    x = state.clean[state.indices]
    t0 = state.trigger.clone()
    assert torch.allclose(state.images[state.indices], x + t0)
    t1 = torch.full_like(t0, 0.25)
    state.trigger = t1
    state.repoison()
    expected = x + t0 + t1 if legacy else x + t1
    assert torch.allclose(state.images[state.indices], expected)


def test_initialisation_default_uses_a_training_image_and_legacy_the_first_test_image(digits) -> None:
    default = AttackState(digits, "invisible", TriggerConfig(), np.random.default_rng(0))
    assert default.trigger.mean().abs().item() < 1e-5  # a target-class training image minus its mean
    legacy = AttackState(digits, "invisible", TriggerConfig(legacy_invisible=True), np.random.default_rng(0))
    first = digits.test_x[digits.test_y == 0][0:1]
    assert torch.equal(legacy.trigger, first)
    assert torch.allclose(
        legacy.black(),
        ((0 - torch.tensor(digits.mean)) / torch.tensor(digits.std)).view(1, 1, 1, 1).expand(1, 1, 8, 8),
    )
