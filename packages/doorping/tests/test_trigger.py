"""Trigger geometry, stamping, poison sets and bounds (spec §6.1, §6.2, §6.4 bounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from doorping.config import TriggerConfig
from doorping.poison import AttackState
from doorping.trigger import (
    Bound,
    doorping_init,
    naive_trigger,
    poison_indices,
    project,
    square_mask,
    square_slice,
    stamp,
    valid_box,
)

from paperlab_core.errors import ConfigError


@pytest.mark.parametrize(("size", "side", "channels"), [(2, 8, 1), (2, 32, 3), (4, 32, 3), (1, 5, 2)])
def test_square_sits_one_pixel_inside_the_bottom_right_corner(size: int, side: int, channels: int) -> None:
    mask = square_mask(channels, (side, side), size)
    assert mask.shape == (1, channels, side, side)
    assert int(mask.sum()) == size * size * channels
    rows, cols = torch.nonzero(mask[0, 0], as_tuple=True)
    assert rows.min() == side - 1 - size and rows.max() == side - 2
    assert cols.min() == side - 1 - size and cols.max() == side - 2
    assert square_slice(size, side) == slice(side - 1 - size, side - 1)


def test_stamping_leaves_every_pixel_outside_the_square_bit_identical() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 32, 32, generator=g) * 1e3  # large values: arithmetic blending would round
    mask = square_mask(3, (32, 32), 2)
    trigger = torch.randn(1, 3, 32, 32, generator=g) * 500
    out = stamp(x, trigger, mask)
    outside = ~mask.bool().expand_as(x)
    assert torch.equal(out[outside], x[outside])  # bit-identical
    assert torch.equal(out[~outside], trigger.expand_as(x)[~outside])
    assert out.data_ptr() != x.data_ptr()  # a copy, never in place


def test_naive_uses_the_maximum_raw_value(digits) -> None:
    mean, std = digits.mean_std(digits.train_x)
    trigger, mask = naive_trigger(1, (8, 8), 2, mean, std)
    white = (1.0 - torch.tensor(digits.mean[0])) / torch.tensor(digits.std[0])  # raw 16 / 16 = 1.0
    assert torch.allclose(trigger[mask.bool()], white.expand(4))
    # the same value a raw pixel of 16 takes in the normalised training images
    raw16 = digits.train_x.max()
    assert torch.isclose(trigger[mask.bool()][0], raw16, atol=1e-6)


def test_doorping_initialisation_draws_integers_in_range_and_background_is_normalised_zero() -> None:
    mean, std = torch.tensor([0.5]).view(1, 1, 1), torch.tensor([0.25]).view(1, 1, 1)
    trig, mask = doorping_init(1, (8, 8), 2, 16, mean, std, np.random.default_rng(0), "dc")
    raw = trig * std + mean  # back to [0, 1] pixels
    square = raw[mask.bool()] * 16
    assert torch.allclose(square, square.round(), atol=1e-5)
    assert square.min() >= 1 - 1e-5 and square.max() <= 16 + 1e-5
    assert torch.allclose(trig[~mask.bool()], torch.tensor(-2.0))  # (0 − 0.5)/0.25
    assert int(mask.sum()) == 4


def test_dd_legacy_mask_threshold_drops_pixels_drawn_as_one() -> None:
    mean, std = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
    rng_seed = next(
        s for s in range(200) if (np.random.default_rng(s).integers(1, 3, size=(2, 2, 3)) == 1).any()
    )
    trig, mask = doorping_init(3, (8, 8), 2, 3, mean, std, np.random.default_rng(rng_seed), "dd", True)
    raw = (trig * 3).round()
    assert torch.equal(mask.bool(), raw > 1)
    assert int(mask.sum()) < 12
    _, full = doorping_init(3, (8, 8), 2, 3, mean, std, np.random.default_rng(rng_seed), "dd", False)
    assert int(full.sum()) == 12


@pytest.mark.parametrize(("n", "portion"), [(1297, 0.01), (50000, 0.01), (10, 0.5), (7, 0.2)])
def test_poison_set_has_floor_eps_n_distinct_indices(n: int, portion: float) -> None:
    idx = poison_indices(n, portion, np.random.default_rng(3))
    assert len(idx) == math.floor(portion * n)
    assert len(set(idx.tolist())) == len(idx)
    assert idx.min() >= 0 and (len(idx) == 0 or idx.max() < n)


@pytest.mark.parametrize("portion", [0.0, 1.0, -0.1, 1.5])
def test_poison_portion_outside_open_unit_interval_is_rejected(portion: float) -> None:
    with pytest.raises(ConfigError, match="portion"):
        poison_indices(100, portion, np.random.default_rng(0))


def test_poisoned_samples_are_relabelled_and_join_the_target_pool(digits, rng) -> None:
    state = AttackState(digits, "doorping", TriggerConfig(), rng)
    assert len(state.indices) == 12  # ⌊0.01 · 1297⌋
    assert (state.labels[state.indices] == 0).all()
    pool = set(state.class_pools[0].tolist())
    assert set(state.indices.tolist()) <= pool
    for c in range(1, 10):
        assert not set(state.indices.tolist()) & set(state.class_pools[c].tolist())
    # poisoned rows carry the trigger on the square and are clean elsewhere
    rows = state.images[state.indices]
    clean = state.clean[state.indices]
    outside = ~state.paste_mask.bool().expand_as(rows)
    assert torch.equal(rows[outside], clean[outside])
    assert torch.equal(rows[~outside], state.trigger.expand_as(rows)[~outside])
    untouched = torch.ones(len(state.clean), dtype=torch.bool)
    untouched[state.indices] = False
    assert torch.equal(state.images[untouched], state.clean[untouched])


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (TriggerConfig(size=8), "does not fit"),
        (TriggerConfig(portion=1.0), "portion"),
        (TriggerConfig(target=10), "out of range"),
    ],
)
def test_bad_attack_settings_give_one_line_errors(digits, cfg: TriggerConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AttackState(digits, "doorping", cfg, np.random.default_rng(0))


def test_bound_parsing() -> None:
    assert Bound.parse("none") == Bound("none")
    assert Bound.parse("VALID") == Bound("valid")
    assert Bound.parse("linf:0.1") == Bound("linf", 0.1)
    assert str(Bound.parse("l2:0.5")) == "l2:0.5"
    for bad in ("linf", "l2:-1", "box:0.1", "linf:nan"):
        with pytest.raises(ConfigError):
            Bound.parse(bad)


def test_valid_projection_clamps_masked_values_into_the_box_only() -> None:
    mean, std = torch.tensor([0.5, 0.25]).view(2, 1, 1), torch.tensor([0.5, 0.25]).view(2, 1, 1)
    mask = square_mask(2, (4, 4), 2)
    t = torch.full((1, 2, 4, 4), 100.0)
    t[0, 1, 1, 1] = -100.0
    project(t, Bound("valid"), mask, t.clone(), mean, std)
    low, high = valid_box(mean, std)  # channel 0: [−1, 1]; channel 1: [−1, 3]
    assert t[0, 0, 1, 1] == high[0, 0, 0] and t[0, 1, 1, 2] == high[1, 0, 0]
    assert t[0, 1, 1, 1] == low[1, 0, 0]
    assert (t[~mask.bool()] == 100.0).all()  # outside the mask untouched


def test_linf_and_l2_projections_on_hand_examples() -> None:
    mean, std = torch.zeros(1, 1, 1), torch.full((1, 1, 1), 0.5)  # valid box [0, 2]
    mask = square_mask(1, (4, 4), 2)  # rows/cols 1..2
    ref = torch.zeros(1, 1, 4, 4)
    ref[mask.bool()] = 1.0
    t = ref.clone()
    t[0, 0, 1, 1] = 1.6  # δ·σ = 0.3 > 0.1 → clipped to 0.1 / σ = 0.2 → 1.2
    t[0, 0, 2, 2] = 0.96  # δ·σ = −0.02 stays
    project(t, Bound("linf", 0.1), mask, ref, mean, std)
    assert t[0, 0, 1, 1].item() == pytest.approx(1.2)
    assert t[0, 0, 2, 2].item() == pytest.approx(0.96)
    # L2: δ·σ = (0.3, 0.4, 0, 0) has norm 0.5 → scaled to norm 0.1: (0.06, 0.08) → t = 1 + (0.12, 0.16)
    t = ref.clone()
    t[0, 0, 1, 1], t[0, 0, 1, 2] = 1.6, 1.8
    project(t, Bound("l2", 0.1), mask, ref, mean, std)
    assert t[0, 0, 1, 1].item() == pytest.approx(1.12)
    assert t[0, 0, 1, 2].item() == pytest.approx(1.16)
    delta = ((t - ref) * std)[mask.bool()]
    assert delta.norm().item() == pytest.approx(0.1, rel=1e-6)
