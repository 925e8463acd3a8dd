"""Neuron selection, the activation read and the DOORPING trigger update (spec §6.3, §6.4)."""

from __future__ import annotations

import pytest
import torch
from doorping.networks import build_network, prefix_output, resolve_layer, weighted_layers
from doorping.neurons import (
    NEURON_SELECT,
    LegacyActivation,
    PrefixActivation,
    active_neurons,
    doorping_objective,
    hook_count,
    select_neurons,
    update_trigger,
)
from doorping.trigger import Bound, square_mask, valid_box
from torch import nn

from paperlab_core.errors import ConfigError


def toy(seed: int = 0) -> nn.Sequential:
    return build_network("toy", 1, 10, (8, 8), seed=seed).eval()


def test_select_neurons_is_the_topk_of_row_l1_norms() -> None:
    layer = nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, -5.0], [2.0, 2.0, 0.5], [-0.1, 0.0, 0.0]])
        )
    # |W| row sums: 2, 5, 4.5, 0.1
    assert select_neurons(layer, 1).tolist() == [1]
    assert select_neurons(layer, 2).tolist() == [1, 2]
    assert select_neurons(layer, 3).tolist() == select_neurons(layer, 3).tolist()  # deterministic
    with pytest.raises(ValueError):
        select_neurons(layer, 0)


@pytest.mark.parametrize(("arch", "size", "channels", "features"), [
    ("toy", 8, 1, (128, 64)), ("convnet", 32, 3, (2048, 192)), ("alexnet", 32, 3, (384, 192)),
])  # fmt: skip
def test_default_layer_is_the_penultimate_linear(
    arch: str, size: int, channels: int, features: tuple
) -> None:
    net = build_network(arch, channels, 10, (size, size), seed=0)
    index = resolve_layer(net, -2)
    assert isinstance(net[index], nn.Linear)
    assert (net[index].in_features, net[index].out_features) == features
    assert isinstance(net[index + 1], nn.ReLU) and net[index + 1].inplace


def test_layer_resolving_to_a_norm_or_out_of_range_is_a_config_error() -> None:
    net = build_network("convnet_dc", 3, 10, (32, 32), seed=0)
    assert len(weighted_layers(net)) == 7  # 3 conv + 3 group-norm + 1 linear
    with pytest.raises(ConfigError, match="Linear"):
        resolve_layer(net, -2)
    with pytest.raises(ConfigError, match="out of range"):
        resolve_layer(toy(), -5)


def test_prefix_activation_equals_the_official_hook_value_post_relu() -> None:
    net = toy()
    index = resolve_layer(net, -2)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 30
    seen = {}
    handle = net[index].register_forward_hook(lambda m, i, o: seen.setdefault("a", o))
    net(x)
    handle.remove()
    fast = prefix_output(net, index, x)
    assert torch.equal(fast, seen["a"])  # the in-place ReLU made the hooked tensor post-ReLU
    assert (fast >= 0).all() and (fast == 0).any()
    assert torch.equal(LegacyActivation(net, -2)(x), fast)


def test_fast_read_registers_no_hook_and_legacy_read_leaks_one_per_call() -> None:
    net = toy()
    fast, legacy = PrefixActivation(net, -2), LegacyActivation(net, -2)
    x = torch.randn(1, 1, 8, 8)
    before = hook_count(net)
    for _ in range(5):
        fast(x)
    assert hook_count(net) == before
    for _ in range(3):
        legacy(x)
    assert hook_count(net) == before + 3


def _setup(seed: int = 0):
    net = toy(seed)
    mask = square_mask(1, (8, 8), 2)
    g = torch.Generator().manual_seed(seed)
    trigger = torch.where(
        mask.bool(), torch.rand(1, 1, 8, 8, generator=g) * 2, torch.full((1, 1, 8, 8), -0.8)
    )
    read = PrefixActivation(net, -2)
    neurons = select_neurons(read.module, 1)
    return net, mask, trigger, read, neurons


def test_update_changes_only_masked_pixels_and_uses_the_amplified_target() -> None:
    _, mask, trigger, read, neurons = _setup()
    t = trigger.clone().requires_grad_(True)
    a0 = read(trigger)[:, neurons]
    expected_first = torch.mean((a0 - 10 * a0) ** 2).item()  # MSE(a, α·a₀) at t₀ = 81·a₀²
    result = update_trigger(read, t, mask, neurons, alpha=10.0, max_steps=25, threshold=0.0)
    assert result.first_loss == pytest.approx(expected_first, rel=1e-5)
    assert result.steps == 25
    outside = ~mask.bool()
    assert torch.equal(t.detach()[outside], trigger[outside])
    assert not torch.equal(t.detach()[mask.bool()], trigger[mask.bool()])
    assert read(t.detach())[:, neurons].item() > a0.item()  # pushed towards 10·a₀
    assert doorping_objective(torch.tensor([2.0]), torch.tensor([5.0])).item() == 9.0


def test_stop_rule_is_checked_before_the_backward() -> None:
    _, mask, trigger, read, neurons = _setup()
    t = trigger.clone().requires_grad_(True)
    result = update_trigger(read, t, mask, neurons, max_steps=50, threshold=1e12)
    assert result.steps == 0 and torch.equal(t.detach(), trigger)
    t = trigger.clone().requires_grad_(True)
    assert update_trigger(read, t, mask, neurons, max_steps=0).steps == 0


def test_every_update_starts_a_fresh_adam() -> None:
    """Adam's first step moves every masked pixel with a non-zero gradient by lr (m̂/√v̂ = ±1)."""
    _, mask, trigger, read, neurons = _setup()
    t = trigger.clone().requires_grad_(True)
    update_trigger(read, t, mask, neurons, lr=0.08, max_steps=7, threshold=0.0)
    before = t.detach().clone()
    update_trigger(read, t, mask, neurons, lr=0.08, max_steps=1, threshold=0.0)
    moved = (t.detach() - before)[mask.bool()].abs()
    assert torch.allclose(moved[moved > 0], torch.full_like(moved[moved > 0], 0.08), rtol=1e-4)


def test_inactive_neuron_makes_the_update_a_no_op() -> None:
    net, mask, trigger, read, neurons = _setup()
    with torch.no_grad():
        net[read.index].bias[neurons] = -1e6  # the selected neuron is dead after the ReLU
    t = trigger.clone().requires_grad_(True)
    result = update_trigger(read, t, mask, neurons)
    assert result.steps == 0 and result.first_loss == 0.0 and torch.equal(t.detach(), trigger)


def test_valid_bound_holds_after_every_step() -> None:
    _, mask, trigger, read, neurons = _setup()
    mean, std = torch.tensor([0.3]).view(1, 1, 1), torch.tensor([0.4]).view(1, 1, 1)
    low, high = valid_box(mean, std)
    seen = []

    def watching(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach()[mask.bool()].clone())
        return read(x)

    t = trigger.clone().requires_grad_(True)
    update_trigger(watching, t, mask, neurons, lr=5.0, max_steps=10, threshold=0.0, bound=Bound("valid"),
                   reference=trigger, mean=mean, std=std)  # fmt: skip
    for values in [*seen[1:], t.detach()[mask.bool()]]:
        assert (values >= low.item() - 1e-6).all() and (values <= high.item() + 1e-6).all()


def test_full_backward_and_trigger_only_gradients_agree() -> None:
    _, mask, trigger, read, neurons = _setup()
    a, b = trigger.clone().requires_grad_(True), trigger.clone().requires_grad_(True)
    update_trigger(read, a, mask, neurons, max_steps=10, threshold=0.0)
    update_trigger(
        LegacyActivation(read.net, -2), b, mask, neurons, max_steps=10, threshold=0.0, full_backward=True
    )
    assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_relative_stop_rule_is_scale_free_and_absolute_is_not() -> None:
    """``relative`` compares the loss with threshold·mean(target²): scaling the activation by c scales the loss and
    the threshold by c², so the steps and the trigger path are the same (Adam is invariant to the gradient's scale
    up to its ε = 1e-8, negligible for c ≥ 1); on a 1000× smaller activation the relative test still starts the
    update while the official absolute test (81·a₀² < 0.5) never does."""
    _, mask, trigger, read, neurons = _setup()
    assert read(trigger)[:, neurons].item() > 0
    paths = []
    for scale in (1.0, 30.0):
        t = trigger.clone().requires_grad_(True)
        result = update_trigger(
            lambda x, c=scale: c * read(x), t, mask, neurons, max_steps=40, threshold=0.5, relative=True
        )
        paths.append((result.steps, t.detach()))
    assert paths[0][0] == paths[1][0] > 0
    # float32 rounding of Adam's moments over ≤ 40 steps of size ≤ lr on values of order 1: ≪ 1e-4
    torch.testing.assert_close(paths[0][1], paths[1][1], rtol=0, atol=1e-4)
    for relative in (True, False):
        t = trigger.clone().requires_grad_(True)
        small = update_trigger(lambda x: 1e-3 * read(x), t, mask, neurons, max_steps=40, relative=relative)
        assert (small.steps > 0) if relative else (small.steps == 0 and torch.equal(t.detach(), trigger))


def test_relative_and_absolute_agree_when_the_target_activation_is_one() -> None:
    _, mask, trigger, read, neurons = _setup()
    unit = 0.1 / read(trigger)[:, neurons].item()  # a₀ = 0.1, so the target α·a₀ = 1 and mean(target²) = 1
    steps = []
    for relative in (False, True):
        t = trigger.clone().requires_grad_(True)
        steps.append(
            update_trigger(lambda x: unit * read(x), t, mask, neurons, max_steps=60, relative=relative).steps
        )
    assert steps[0] == steps[1] > 0


def test_relative_stop_rule_keeps_an_inactive_neuron_a_no_op() -> None:
    net, mask, trigger, read, neurons = _setup()
    with torch.no_grad():
        net[read.index].bias[neurons] = -1e6
    t = trigger.clone().requires_grad_(True)
    result = update_trigger(read, t, mask, neurons, relative=True)
    assert result.steps == 0 and torch.equal(t.detach(), trigger)


def test_unknown_threshold_mode_is_a_config_error() -> None:
    from doorping.module import DistillModule

    with pytest.raises(ConfigError, match="threshold_mode"):
        DistillModule(trigger={"threshold_mode": "percent"})


def test_active_selection_ranks_active_neurons_first_in_weight_order() -> None:
    layer = nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(
            torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, -5.0], [2.0, 2.0, 0.5], [-0.1, 0.0, 0.0]])
        )
    # |W| row sums: 2, 5, 4.5, 0.1 → official order 1, 2, 0, 3
    assert select_neurons(layer, 4, torch.ones(4, dtype=torch.bool)).tolist() == [1, 2, 0, 3]
    active = torch.tensor([True, False, False, True])
    assert select_neurons(layer, 1, active).tolist() == [0]  # the heaviest neuron (1) is dead: skipped
    assert select_neurons(layer, 3, active).tolist() == [0, 3, 1]  # then the inactive ones, in weight order
    assert select_neurons(layer, 1, torch.zeros(4, dtype=torch.bool)).tolist() == [1]  # none active: official


def test_active_neurons_mask_is_the_post_relu_output_above_zero() -> None:
    net, _, trigger, read, _ = _setup()
    mask = active_neurons(net, read.index, trigger)
    assert mask.dtype == torch.bool and mask.shape == (read.module.out_features,)
    assert torch.equal(mask, read(trigger)[0] > 0) and mask.any() and not mask.all()


def test_active_selection_turns_a_dead_neuron_no_op_into_a_real_update(
    digits, toy_settings, make_run
) -> None:
    """The official Σ|W| choice of a neuron that is dead on the trigger makes the update a no-op (spec §2.3.3);
    ``neuron_select active`` (ours) picks the heaviest active neuron instead, and the trigger moves."""
    from dataclasses import replace

    from doorping.dc import trigger_update

    steps, moved = {}, {}
    for mode in NEURON_SELECT:
        settings = replace(
            toy_settings, trigger=replace(toy_settings.trigger, neuron_select=mode, threshold_mode="relative")
        )
        attack, _, _ = make_run(digits, settings)
        net = toy(3)
        read = PrefixActivation(net, -2)
        heaviest = int(select_neurons(read.module, 1))
        with torch.no_grad():
            read.module.bias[heaviest] = -1e6  # dead on every input
        before = attack.trigger.clone()
        steps[mode] = trigger_update(net, attack, settings, "dc").steps
        moved[mode] = not torch.equal(attack.trigger, before)
    assert steps["weight"] == 0 and not moved["weight"]
    assert steps["active"] > 0 and moved["active"]


def test_unknown_neuron_select_is_a_config_error() -> None:
    from doorping.module import DistillModule

    with pytest.raises(ConfigError, match="neuron_select"):
        DistillModule(trigger={"neuron_select": "random"})
