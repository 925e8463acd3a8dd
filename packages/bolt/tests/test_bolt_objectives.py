"""Target branch / EMA, BYOL loss, ranking losses, λ = 0 (spec §6 items 3–5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bolt_ssl.ema import ema_update_, tau_schedule
from bolt_ssl.losses import byol_loss, normalized_mse, rank_bce, rank_labels, rank_margin
from bolt_ssl.perturb import make_generator
from bolt_ssl.pretrain import RankConfig, SSLConfig, token_byol_step


def test_target_has_no_grads_and_holds_neither_predictor_nor_rank_head(tiny_nets):
    nets = tiny_nets()
    target_params = list(nets.target.parameters()) + list(nets.target_projector.parameters())
    assert target_params and not any(p.requires_grad for p in target_params)
    target_ids = {id(p) for p in target_params}
    assert not target_ids & {id(p) for p in nets.predictor.parameters()}
    assert not target_ids & {id(p) for p in nets.rank_head.parameters()}
    assert not target_ids & {id(p) for p in nets.online.parameters()}


def test_ema_update_equals_tau_xi_plus_one_minus_tau_theta(tiny_nets):
    nets = tiny_nets()
    with torch.no_grad():
        for p in list(nets.online.parameters()) + list(nets.projector.parameters()):
            p.add_(torch.randn_like(p))
    target, online = nets.online_pairs()
    xi = [p.detach().double().clone() for p in target.parameters()]
    theta = [p.detach().double().clone() for p in online.parameters()]
    nets.projector.net[1].running_mean.fill_(0.25)
    tau = 0.9731
    ema_update_(target, online, tau)
    for new, x, t in zip(target.parameters(), xi, theta, strict=True):
        # fp32 result of one multiply-add on O(1) values: error ≤ a few ulp ≈ 1e-7
        assert torch.allclose(new.double(), tau * x + (1 - tau) * t, atol=1e-7, rtol=0)
    assert torch.equal(
        nets.target_projector.net[1].running_mean, nets.projector.net[1].running_mean
    )  # copied


def test_tau_follows_the_cosine_ramp():
    K, base = 1000, 0.99
    assert tau_schedule(0, K, base) == pytest.approx(base, abs=1e-15)
    assert tau_schedule(K, K, base) == pytest.approx(1.0, abs=1e-15)
    for k in (250, 500, 731):
        assert tau_schedule(k, K, base) == pytest.approx(
            1 - (1 - base) * (math.cos(math.pi * k / K) + 1) / 2, abs=1e-15
        )
    assert tau_schedule(500, K, base) == pytest.approx((1 + base) / 2, abs=1e-15)
    assert tau_schedule(500, K, base, "constant") == base


def test_byol_loss_equals_numpy_and_is_symmetric():
    rng = np.random.default_rng(0)
    p1, p2, z1, z2 = (rng.normal(size=(7, 16)) for _ in range(4))

    def ell(p, z):
        p = p / np.linalg.norm(p, axis=1, keepdims=True)
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        return ((p - z) ** 2).sum(axis=1).mean()

    t = [torch.tensor(a, dtype=torch.float32) for a in (p1, p2, z1, z2)]
    assert float(byol_loss(*t)) == pytest.approx(ell(p1, z2) + ell(p2, z1), abs=1e-6)
    assert float(byol_loss(t[1], t[0], t[3], t[2])) == pytest.approx(float(byol_loss(*t)), abs=1e-6)
    cos = (t[0] * t[2]).sum(1) / (t[0].norm(dim=1) * t[2].norm(dim=1))
    assert torch.allclose(normalized_mse(t[0], t[2]), 2 - 2 * cos, atol=1e-6)


def test_byol_loss_is_zero_for_positively_proportional_vectors():
    p = torch.randn(5, 8)
    assert float(byol_loss(p, 2 * p, 3.5 * p, 0.1 * p)) == pytest.approx(0.0, abs=1e-6)
    assert float(normalized_mse(p, -p).mean()) == pytest.approx(4.0, abs=1e-6)


def test_gradients_reach_only_the_online_branch(tiny_nets, images16):
    nets = tiny_nets()
    out = token_byol_step(nets, images16, SSLConfig("bolt"), make_generator("cpu", 0))
    out.loss.backward()
    assert all(p.grad is None for p in nets.target.parameters())
    assert all(p.grad is None for p in nets.target_projector.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets.predictor.parameters())
    assert nets.online.vit.patch_embed.proj.weight.grad.abs().sum() > 0
    assert nets.rank_head.linear.weight.grad.abs().sum() > 0  # λ > 0: the ranking gradient reaches the head


def test_rank_label_is_one_when_the_first_view_is_harder():
    y, keep = rank_labels(torch.tensor([0.7, 0.1, 0.5]), torch.tensor([0.2, 0.3, 0.49]), tie_eps=0.05)
    assert y.tolist() == [1.0, 0.0, 1.0]
    assert keep.tolist() == [True, True, False]  # |0.5 − 0.49| < tie_eps


def test_rank_losses_equal_torch_references():
    g = torch.Generator().manual_seed(0)
    r1, r2 = torch.randn(20, generator=g), torch.randn(20, generator=g)
    y = (torch.rand(20, generator=g) > 0.5).float()
    assert float(rank_bce(r1 - r2, y)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(r1 - r2, y)), abs=1e-6
    )
    ref = torch.nn.MarginRankingLoss(margin=0.1)(r1, r2, 2 * y - 1)
    assert float(rank_margin(r1, r2, y, 0.1)) == pytest.approx(float(ref), abs=1e-6)
    keep = torch.arange(20) % 3 != 0
    assert float(rank_bce(r1 - r2, y, keep)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits((r1 - r2)[keep], y[keep])), abs=1e-6
    )


def test_lambda_zero_reproduces_token_byol(tiny_nets, images16):
    """λ = 0: the same loss and encoder gradients as a run without the ranking head; the head gets none."""
    grads = {}
    for name, cfg in (
        ("bolt_l0", SSLConfig("bolt", rank=RankConfig(weight=0.0))),
        ("token_byol", SSLConfig("token_byol")),
    ):
        nets = tiny_nets(seed=1)
        out = token_byol_step(nets, images16, cfg, make_generator("cpu", 5))
        out.loss.backward()
        assert all(p.grad is None for p in nets.rank_head.parameters())
        grads[name] = (float(out.loss.detach()), [p.grad.clone() for p in nets.online.parameters()])
        if name == "token_byol":
            assert float(out.loss.detach()) == float(out.logs["byol"])
    assert grads["bolt_l0"][0] == grads["token_byol"][0]
    for a, b in zip(grads["bolt_l0"][1], grads["token_byol"][1], strict=True):
        assert torch.equal(a, b)
    nets = tiny_nets(seed=1)  # and λ > 0 changes the encoder gradients
    token_byol_step(nets, images16, SSLConfig("bolt"), make_generator("cpu", 5)).loss.backward()
    assert not torch.equal(nets.online.vit.patch_embed.proj.weight.grad, grads["token_byol"][1][0])


@pytest.mark.parametrize(("loss", "source"), [("margin", "online_both"), ("bce", "online_target")])
def test_rank_variants_train(tiny_nets, images16, loss, source):
    nets = tiny_nets(rank=RankConfig(loss=loss, input=source))
    out = token_byol_step(nets, images16, SSLConfig("bolt", rank=RankConfig(loss=loss, input=source)),
                          make_generator("cpu", 0))  # fmt: skip
    out.loss.backward()
    assert torch.isfinite(out.loss) and nets.rank_head.linear.weight.grad.abs().sum() > 0
    assert 0.0 <= float(out.logs["rank_acc"]) <= 1.0
