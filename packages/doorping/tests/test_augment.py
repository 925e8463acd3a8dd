"""Differentiable Siamese augmentation (DSA) and its use in DC/DM (spec §2.6, §2.8)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from doorping.augment import GROUPS, DSAParams, augment
from doorping.dc import dc_iteration, dm_iteration

from paperlab_core.errors import ConfigError

ZERO = DSAParams(
    mode="M",
    scale=0.0,
    rotate=0.0,
    crop=0.0,
    cutout=0.0,
    flip=0.0,
    brightness=0.0,
    saturation=0.0,
    contrast=0.0,
)


def batch(n: int = 12, channels: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("group", [*GROUPS, "color_crop_cutout_flip_scale_rotate"])
@pytest.mark.parametrize("mode", ["S", "M"])
def test_siamese_batches_get_the_same_transformation(group: str, mode: str) -> None:
    """A synthetic batch that copies the first rows of a real batch stays equal to them after augmenting both with
    one seed: the parameters are shared by both batches (and by every image of a batch)."""
    params = DSAParams(strategy=group, mode=mode)
    real = batch(12)
    syn = real[:4].clone()
    for seed in range(6):
        a_real, a_syn = augment(real, seed, params), augment(syn, seed, params)
        torch.testing.assert_close(a_syn, a_real[:4], rtol=0, atol=0)


@pytest.mark.parametrize("group", GROUPS)
def test_each_transformation_changes_the_batch_and_depends_on_the_seed(group: str) -> None:
    """Guards the test above: augmenting is not a no-op, and another seed gives another transformation."""
    params = DSAParams(strategy=group, mode="M", flip=1.0 if group == "flip" else 0.5)
    x = batch(8)
    outs = [augment(x, seed, params) for seed in range(8)]
    assert all(o.shape == x.shape for o in outs)
    assert any((o - x).abs().max() > 1e-3 for o in outs)
    if group != "flip":  # flip has one outcome at probability 1
        assert any((outs[0] - o).abs().max() > 1e-3 for o in outs[1:])


def test_non_siamese_draws_per_image_parameters() -> None:
    x = batch(1).expand(6, -1, -1, -1).contiguous()  # six copies of one image
    out = augment(x, 3, DSAParams(strategy="scale_rotate", mode="M"), siamese=False)
    assert (out[0] - out[1:]).abs().flatten(1).max(1).values.min() > 1e-3
    shared = augment(x, 3, DSAParams(strategy="scale_rotate", mode="M"), siamese=True)
    torch.testing.assert_close(shared[1:], shared[:1].expand(5, -1, -1, -1), rtol=0, atol=0)


def test_all_strengths_zero_is_the_identity() -> None:
    """Crop, cutout and flip are exact at strength 0, colour up to float32 rounding of ``(x − x̄)·1 + x̄``; scale
    and rotate resample an identity grid.

    Tolerance: ``affine_grid`` + unnormalisation put each sample point within a few float32 ulps of its pixel
    centre, ≈ 16 px · 6e-8 · (a few) ≲ 1e-6 px; the bilinear error is that offset times a neighbour difference,
    ≤ 2·max|x| ≈ 10 for this N(0, 1) batch → ≤ 1e-5 typical, 1e-4 allowed (a real transformation moves ≫ 1e-3)."""
    x = batch(5, 3, 16)
    for seed in range(4):
        torch.testing.assert_close(augment(x, seed, ZERO), x, rtol=0, atol=1e-4)
        torch.testing.assert_close(augment(x, seed, ZERO, siamese=False), x, rtol=0, atol=1e-4)
    assert torch.equal(augment(x, 0, dataclasses.replace(ZERO, strategy="crop_cutout_flip")), x)
    colour = augment(x, 0, dataclasses.replace(ZERO, strategy="color"))
    torch.testing.assert_close(colour, x, rtol=0, atol=1e-6)  # a few ulps of |x| ≤ 5


def test_gradient_reaches_the_synthetic_images_through_every_transformation() -> None:
    target = batch(4, 3, 16, seed=1)
    for group in GROUPS:
        syn = batch(4, 3, 16, seed=2).requires_grad_(True)
        loss = (augment(syn, 5, DSAParams(strategy=group, mode="M", flip=1.0)) * target).sum()
        (grad,) = torch.autograd.grad(loss, syn)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, group


def test_color_follows_the_official_formulas() -> None:
    """Brightness shift in ±s_b/2, saturation and contrast factors in [1 − s, 1 + s] (official ranges)."""
    x = batch(1, 3, 8)
    only_brightness = dataclasses.replace(ZERO, strategy="color", brightness=1.0)
    shift = augment(x, 7, only_brightness) - x
    assert shift.std() < 1e-6 and abs(float(shift.mean())) <= 0.5
    only_contrast = dataclasses.replace(ZERO, strategy="color", contrast=0.5)
    out = augment(x, 7, only_contrast)
    ratio = (out - out.mean()) / (x - x.mean())
    assert ratio.std() < 1e-4 and 0.5 <= float(ratio.mean()) <= 1.5


def test_bad_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dsa_strategy"):
        augment(batch(2), 0, DSAParams(strategy="color_blur"))
    with pytest.raises(ConfigError, match="dsa_mode"):
        augment(batch(2), 0, DSAParams(mode="X"))


def test_dc_iteration_with_dsa_augments_real_and_synthetic_with_one_seed(
    digits, toy_settings, monkeypatch, make_run
) -> None:
    """In a DC step, every class's real and synthetic batches are augmented with the same seed, and the synthetic
    images still receive a gradient (they change)."""
    import doorping.augment as dsa_module

    s = copy.deepcopy(toy_settings)
    s.attack, s.dc.dsa, s.dc.dsa_strategy = "naive", True, "color_crop_cutout_scale_rotate"
    s.dc.outer_loop, s.dc.inner_loop = 2, 1
    seen: list[tuple[int, int, bool]] = []
    real_augment = dsa_module.augment

    def spy(x, seed, params, siamese=True):
        seen.append((len(x), seed, siamese))
        return real_augment(x, seed, params, siamese)

    monkeypatch.setattr(dsa_module, "augment", spy)
    attack, syn, opt = make_run(digits, s)
    before = syn.detach().clone()
    dc_iteration(0, s, attack, syn, opt, (1, 10, (8, 8)))
    assert not torch.equal(before, syn.detach())
    siamese = [e for e in seen if e[2]]
    outer, _ = s.loops()
    assert len(siamese) == 2 * 10 * outer  # real + synthetic, per class, per outer step
    pairs = list(zip(siamese[::2], siamese[1::2], strict=True))
    assert all(r[1] == y[1] and y[0] == s.ipc for r, y in pairs)  # one seed per (real, synthetic) pair
    assert len({r[1] for r, _ in pairs}) == len(pairs)  # a new seed per class and step
    assert any(not e[2] for e in seen)  # the inner loop trains with per-image DSA


def test_dm_iteration_with_dsa_runs_and_changes_the_set(digits, toy_settings, make_run) -> None:
    s = copy.deepcopy(toy_settings)
    s.method, s.attack, s.dc.dsa = "dm", "none", True
    attack, syn, _ = make_run(digits, s)
    opt = torch.optim.SGD([syn], lr=s.dc.lr_img_dm, momentum=0.5)
    before = syn.detach().clone()
    stats = dm_iteration(0, s, attack, syn, opt, (1, 10, (8, 8)))
    assert np.isfinite(stats.loss) and not torch.equal(before, syn.detach())
