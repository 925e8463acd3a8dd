"""DD: unrolled hyper-gradients against autograd and finite differences, learnable lrs, schedule (spec §6.7)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from doorping.config import DDConfig
from doorping.dd import (
    FlatParams,
    dd_iteration,
    hypergradients,
    make_steps,
    poisoned_positions,
    raw_lr_init,
    unroll,
)
from doorping.poison import AttackState
from torch import nn
from torch.nn import functional as F


class Tiny(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))


def _problem(dtype=torch.float64):
    g = torch.Generator().manual_seed(0)
    net = Tiny().to(dtype)
    model = FlatParams(net)
    w0 = model.flat()
    cfg = DDConfig(distill_steps=2, distill_epochs=2, images_per_class_per_step=1, distill_lr=0.3)
    syn = torch.randn(4, 1, 2, 2, generator=g, dtype=dtype, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1])
    raw = torch.full((4,), raw_lr_init(cfg), dtype=dtype, requires_grad=True)
    real_x = torch.randn(6, 1, 2, 2, generator=g, dtype=dtype)
    real_y = torch.tensor([0, 1, 1, 0, 1, 0])
    return model, w0, cfg, syn, labels, raw, real_x, real_y


def _meta_loss(model, w0, cfg, syn, labels, raw, real_x, real_y) -> torch.Tensor:
    """The unrolled objective written naively (one differentiable graph)."""
    w = w0.clone().requires_grad_(True)
    for x, y, lr in make_steps(syn, labels, raw, cfg):
        g = torch.autograd.grad(F.cross_entropy(model(w, x), y), w, create_graph=True)[0]
        w = w - lr * g
    return F.cross_entropy(model(w, real_x), real_y)


def test_softplus_parameterisation_starts_at_distill_lr() -> None:
    cfg = DDConfig(distill_lr=0.001)
    assert F.softplus(torch.tensor(raw_lr_init(cfg), dtype=torch.float64)).item() == pytest.approx(
        0.001, rel=1e-9
    )
    steps = make_steps(torch.zeros(6, 1, 2, 2), torch.zeros(6, dtype=torch.long), torch.zeros(9),
                       DDConfig(distill_steps=3, distill_epochs=3))  # fmt: skip
    assert len(steps) == 9 and steps[0][0].shape[0] == 2


def test_reverse_mode_hypergradient_matches_autograd_and_finite_differences() -> None:
    model, w0, cfg, syn, labels, raw, real_x, real_y = _problem()
    steps = make_steps(syn, labels, raw, cfg)
    ws, gws = unroll(model, w0, steps)
    meta = F.cross_entropy(model(ws[-1], real_x), real_y)
    gdata, glrs = hypergradients(steps, ws, gws, meta)
    torch.autograd.backward([x for x, _, _ in steps] + [lr for _, _, lr in steps], gdata + glrs)
    ours_x, ours_raw = syn.grad.clone(), raw.grad.clone()

    syn2, raw2 = syn.detach().clone().requires_grad_(True), raw.detach().clone().requires_grad_(True)
    reference = _meta_loss(model, w0, cfg, syn2, labels, raw2, real_x, real_y)
    ref_x, ref_raw = torch.autograd.grad(reference, (syn2, raw2))
    assert meta.item() == pytest.approx(reference.item(), rel=1e-12)
    assert torch.allclose(ours_x, ref_x, rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours_raw, ref_raw, rtol=1e-9, atol=1e-12)

    eps = 1e-6  # float64 central differences: error O(eps²) + rounding O(1e-16/eps)
    for index in [(0, 0, 0, 0), (3, 0, 1, 1)]:
        plus, minus = syn.detach().clone(), syn.detach().clone()
        plus[index] += eps
        minus[index] -= eps
        fd = (_meta_loss(model, w0, cfg, plus, labels, raw.detach(), real_x, real_y)
              - _meta_loss(model, w0, cfg, minus, labels, raw.detach(), real_x, real_y)) / (2 * eps)  # fmt: skip
        assert ours_x[index].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-9)
    plus, minus = raw.detach().clone(), raw.detach().clone()
    plus[2] += eps
    minus[2] -= eps
    fd = (_meta_loss(model, w0, cfg, syn.detach(), labels, plus, real_x, real_y)
          - _meta_loss(model, w0, cfg, syn.detach(), labels, minus, real_x, real_y)) / (2 * eps)  # fmt: skip
    assert ours_raw[2].item() == pytest.approx(fd.item(), rel=1e-5, abs=1e-9)


def test_poisoned_positions_follow_the_official_batch_arithmetic() -> None:
    idx = torch.tensor([3, 1030, 1500, 2047, 2048])
    assert poisoned_positions(idx, 0, 1024).tolist() == [3]
    assert poisoned_positions(idx, 1, 1024).tolist() == [6, 476, 1023]
    assert poisoned_positions(idx, 2, 1024).tolist() == [0]


def test_dd_iteration_updates_the_trigger_once_on_the_final_weights(
    digits, toy_settings, monkeypatch
) -> None:
    import doorping.dd as dd

    s = copy.deepcopy(toy_settings)
    s.method = "dd"
    s.dd = DDConfig(distill_steps=2, distill_epochs=1, images_per_class_per_step=1, batch_size=512)
    attack = AttackState(digits, "doorping", s.trigger, np.random.default_rng(0), "dd")
    net = dd.fixed_init_net(s, (1, 10, (8, 8)))
    model = FlatParams(net)
    w0 = model.flat()
    syn = torch.randn(20, 1, 8, 8, requires_grad=True)
    labels = torch.arange(10).repeat(2)
    raw = torch.full((2,), raw_lr_init(s.dd), requires_grad=True)
    seen = []
    real = dd.trigger_update
    monkeypatch.setattr(dd, "trigger_update", lambda net, *a: (seen.append(net), real(net, *a))[1])
    before = attack.trigger.clone()
    stats = dd_iteration(
        0, s, attack, model, w0, syn, labels, raw, (digits.train_x[:512], digits.train_y[:512]), 0
    )
    assert stats.updates == 1 and len(seen) == 1
    ws, _ = unroll(model, w0, make_steps(syn.detach(), labels, raw.detach(), s.dd))
    held = torch.cat([p.detach().flatten() for p in seen[0].parameters()])
    assert torch.allclose(held, ws[-1].detach(), atol=1e-6)  # the trigger saw w_T
    assert syn.grad is not None and raw.grad is not None and math.isfinite(float(raw.grad.sum()))
    assert not torch.equal(before, attack.trigger) or stats.steps == [0]
