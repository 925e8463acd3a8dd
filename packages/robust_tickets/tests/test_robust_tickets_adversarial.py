"""Criterion 4: the adversarial inner loops (paper PGD and official FreeLB average)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from robust_tickets.losses import (
    ascent_step,
    freelb_objective,
    init_delta,
    logits_from_embeds,
    pgd_ascent,
    pgd_objective,
    word_embeddings,
)


@pytest.fixture
def net64(tiny_masked):
    net = tiny_masked.double()
    with torch.no_grad():
        net.mask_scores.copy_(
            torch.randn(net.num_entries, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        )
    net.freeze_backbone()
    net.eval()
    return net


def _clean_grad(net, ids, mask, labels):
    net.mask_scores.grad = None
    F.cross_entropy(net(input_ids=ids, attention_mask=mask).logits, labels).backward()
    g = net.mask_scores.grad.clone()
    net.mask_scores.grad = None
    return g


@pytest.mark.parametrize("mode", ["paper", "freelb"])
def test_zero_eps_zero_eta_gives_clean_gradient(net64, batch, mode):
    ids, mask, labels = batch
    ref = _clean_grad(net64, ids, mask, labels)
    fn = pgd_objective if mode == "paper" else freelb_objective
    fn(net64, ids, mask, labels, lambda loss: loss.backward(), steps=3, eps0=0.0, eta=0.0)
    assert torch.allclose(net64.mask_scores.grad, ref, atol=1e-6, rtol=0)


def test_initial_delta_norm():
    mask = torch.ones(400, 20, dtype=torch.long)
    mask[:, 15:] = 0
    delta = init_delta(mask, 64, eps0=0.05, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean_norm = float(delta.flatten(1).norm(dim=1).mean())
    assert abs(mean_norm - 0.05 / math.sqrt(3)) < 0.1 * 0.05 / math.sqrt(3)
    assert float(delta[:, 15:].abs().max()) == 0.0


def test_ascent_step_has_norm_eta_and_keeps_padding_zero():
    mask = torch.ones(8, 10, dtype=torch.long)
    mask[:, 7:] = 0
    gen = torch.Generator().manual_seed(1)
    delta = init_delta(mask, 16, 0.05, generator=gen, dtype=torch.float64)
    grad = torch.randn(8, 10, 16, dtype=torch.float64, generator=gen)
    new = ascent_step(delta, grad, 0.03, mask)
    assert torch.allclose((new - delta).flatten(1).norm(dim=1), torch.full((8,), 0.03, dtype=torch.float64))
    assert float(new[:, 7:].abs().max()) == 0.0
    linf = ascent_step(delta, grad, 0.03, mask, norm_type="linf")
    assert torch.allclose(
        (linf - delta).flatten(1).abs().amax(dim=1), torch.full((8,), 0.03, dtype=torch.float64)
    )


def test_pgd_increases_loss_and_keeps_padding_and_no_mask_grad(net64, batch):
    ids, mask, labels = batch
    emb = word_embeddings(net64, ids)
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    delta0 = pgd_ascent(net64, emb, mask, labels, 0, eps0=0.05, generator=gen_a)
    delta_k = pgd_ascent(net64, emb, mask, labels, 5, eps0=0.05, eta=0.1, generator=gen_b)
    assert net64.mask_scores.grad is None  # ascent passes produce no mask gradient
    with torch.no_grad():
        l0 = F.cross_entropy(logits_from_embeds(net64, emb + delta0, mask), labels, reduction="none")
        lk = F.cross_entropy(logits_from_embeds(net64, emb + delta_k, mask), labels, reduction="none")
    assert float((lk > l0).double().mean()) >= 0.9
    pad = (mask == 0).unsqueeze(-1).expand_as(delta_k)
    assert float(delta_k[pad].abs().max()) == 0.0


def test_freelb_gradient_is_mean_of_per_pass_gradients(net64, batch):
    ids, mask, labels = batch
    steps, eps0, eta = 3, 0.05, 0.1
    freelb_objective(
        net64,
        ids,
        mask,
        labels,
        lambda loss: loss.backward(),
        steps,
        eps0,
        eta,
        generator=torch.Generator().manual_seed(5),
    )
    accumulated = net64.mask_scores.grad.clone()
    net64.mask_scores.grad = None
    emb = word_embeddings(net64, ids)
    delta = init_delta(mask, emb.shape[-1], eps0, generator=torch.Generator().manual_seed(5), dtype=emb.dtype)
    grads = []
    for k in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(logits_from_embeds(net64, emb + delta, mask), labels)
        g_mask, g_delta = torch.autograd.grad(loss, [net64.mask_scores, delta])
        grads.append(g_mask)
        if k < steps - 1:
            delta = ascent_step(delta.detach(), g_delta, eta, mask)
    assert torch.allclose(accumulated, torch.stack(grads).mean(0), atol=1e-9)
    assert not torch.allclose(grads[0], grads[-1], atol=1e-9)
