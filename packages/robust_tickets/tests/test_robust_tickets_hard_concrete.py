"""Criterion 1-2: hard-concrete sampling, eval gate, closed forms, L0 at init."""

from __future__ import annotations

import math

import pytest
import torch
from robust_tickets.hard_concrete import (
    FusedHardConcrete,
    hard_concrete_gate,
    hard_concrete_sample,
    init_log_alpha,
    prob_nonzero,
    prob_one,
    prob_zero,
)
from robust_tickets.losses import l0_penalty


def _closed_p_nonzero(log_alpha: float) -> float:
    return 1 / (1 + math.exp(-(log_alpha - (2 / 3) * math.log(0.1 / 1.1))))


@pytest.mark.parametrize(("log_alpha", "expected"), [(-2.0, 0.401), (0.0, 0.832), (math.log(5), 0.961)])
def test_monte_carlo_p_nonzero_matches_closed_form(log_alpha, expected):
    torch.manual_seed(0)
    m = hard_concrete_sample(torch.full((200_000,), log_alpha))
    mc = float((m > 0).double().mean())
    assert abs(mc - _closed_p_nonzero(log_alpha)) < 0.005
    assert abs(_closed_p_nonzero(log_alpha) - expected) < 5e-4
    assert abs(float(prob_nonzero(torch.tensor(log_alpha))) - _closed_p_nonzero(log_alpha)) < 1e-6


def test_eval_gate_formula_exact():
    la = torch.linspace(-8, 8, 1001)
    ref = torch.clamp(1.2 * torch.sigmoid(la) - 0.1, 0, 1)
    assert torch.allclose(hard_concrete_gate(la), ref, atol=1e-7, rtol=0)


def test_samples_in_unit_interval_with_point_masses_and_init_moments():
    torch.manual_seed(1)
    la = math.log(5)
    m = hard_concrete_sample(torch.full((200_000,), la))
    assert float(m.min()) == 0.0 and float(m.max()) == 1.0
    assert abs(float(m.mean()) - 0.807) < 0.005
    p1, p0 = float((m == 1).double().mean()), float((m == 0).double().mean())
    assert abs(p1 - 0.503) < 0.005 and abs(p0 - 0.039) < 0.003
    assert abs(p1 - prob_one(la)) < 0.005 and abs(p0 - prob_zero(la)) < 0.003
    assert abs(prob_one(la) - 0.503) < 0.001 and abs(prob_zero(la) - 0.039) < 0.001


def test_init_gate_and_l0_at_init():
    la = init_log_alpha(0.9)
    assert abs(la - math.log(5)) < 1e-12
    scores = torch.full((1000,), la)
    assert torch.allclose(hard_concrete_gate(scores), torch.full((1000,), 0.9))
    assert abs(float(l0_penalty(scores)) - 0.9611) < 1e-4
    assert abs(float(l0_penalty(scores, [100, 400, 500], mean_of_means=True)) - 0.9611) < 1e-4


def test_l0_normalisations_differ_for_unequal_matrices():
    small, big = torch.full((10,), -3.0), torch.full((40,), 3.0)
    scores = torch.cat([small, big])
    p_small, p_big = float(prob_nonzero(small[:1])), float(prob_nonzero(big[:1]))
    assert abs(float(l0_penalty(scores)) - (10 * p_small + 40 * p_big) / 50) < 1e-6
    assert abs(float(l0_penalty(scores, [10, 40], mean_of_means=True)) - (p_small + p_big) / 2) < 1e-6
    assert abs(float(l0_penalty(scores)) - float(l0_penalty(scores, [10, 40], True))) > 0.1


@pytest.mark.parametrize("chunk", [1 << 17, 1000])  # one block; many blocks with a ragged last one
def test_fused_kernel_equals_plain_ops_value_and_gradient(chunk, monkeypatch):
    import robust_tickets.hard_concrete as hc

    monkeypatch.setattr(hc, "CHUNK", chunk)
    torch.manual_seed(2)
    la = torch.randn(5000, dtype=torch.float64) * 2
    u = torch.rand(5000, dtype=torch.float64)
    a = la.clone().requires_grad_(True)
    b = la.clone().requires_grad_(True)
    plain = hard_concrete_sample(a, u.clone())
    fused = FusedHardConcrete.apply(b, u.clone())
    assert torch.allclose(plain, fused, atol=1e-12)
    w = torch.randn(5000, dtype=torch.float64)
    (plain * w).sum().backward()
    (fused * w).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-9)


def test_noise_workspace_gives_the_same_sample_and_guards_reuse():
    """The persistent noise tensor: the same gates as a fresh draw from the same generator state, and a sample
    that overwrites a gate still needed by a pending backward is refused by autograd's version check."""
    from robust_tickets.hard_concrete import fused_hard_concrete_sample

    la = torch.randn(3000, dtype=torch.float64, requires_grad=True)
    fresh = fused_hard_concrete_sample(la, torch.Generator().manual_seed(5))
    work = torch.empty(3000, dtype=torch.float64)
    reused = fused_hard_concrete_sample(la, torch.Generator().manual_seed(5), noise=work)
    assert torch.equal(fresh, reused) and reused.data_ptr() == work.data_ptr()
    reused.sum().backward()  # the first gate's graph is done: the workspace may be reused
    first = fused_hard_concrete_sample(la, torch.Generator().manual_seed(6), noise=work)
    fused_hard_concrete_sample(la, torch.Generator().manual_seed(7), noise=work)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        first.sum().backward()
    with pytest.raises(ValueError, match="noise has shape"):
        fused_hard_concrete_sample(la, noise=torch.empty(10, dtype=torch.float64))


def test_masked_model_reuses_one_noise_workspace(tiny_backbone):
    from robust_tickets.models import MaskedModel

    net = MaskedModel(tiny_backbone, "soft").train()
    a, b = net.compute_gates(), None
    ptr = a.data_ptr()
    del a
    b = net.compute_gates()
    assert b.data_ptr() == ptr and "_noise" not in net.state_dict()
    net.double()
    assert net.compute_gates().dtype == torch.float64  # rebuilt after a cast


def test_kernel_blocks_on_cpu_only():
    from robust_tickets.hard_concrete import CHUNK, _block_size

    assert _block_size(torch.empty(3 * CHUNK)) == CHUNK and _block_size(torch.empty(7)) == 7
    assert _block_size(torch.empty(3 * CHUNK, device="meta")) == 3 * CHUNK  # accelerators: one block
