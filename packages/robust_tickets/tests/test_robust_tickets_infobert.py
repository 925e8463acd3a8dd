"""InfoBERT baseline: the estimators against independent computations, the anchored-token selection, the
alpha = beta = 0 reduction to FreeLB, a tiny fit and the reproduce method list."""

from __future__ import annotations

import math

import pytest
import torch
from robust_tickets.infobert import (
    GaussianClubHead,
    InfoNCECritic,
    info_nce_lower_bound,
    infobert_objective,
    information_bottleneck,
    select_anchored_tokens,
)


def test_info_nce_matches_a_brute_force_loop():
    gen = torch.Generator().manual_seed(0)
    critic = InfoNCECritic(5, 3, hidden=7)
    t, z = torch.randn(6, 5, generator=gen), torch.randn(6, 3, generator=gen)
    with torch.no_grad():
        scores = critic(t, z)
    total = 0.0
    for i in range(6):
        row = [float(critic.net(torch.cat([t[j], z[i]])).detach()) for j in range(6)]
        assert row == pytest.approx(scores[i].tolist(), abs=1e-6)  # S[i, j] = g(t_j, z_i)
        total += row[i] - math.log(sum(math.exp(s) for s in row) / 6)
    assert float(info_nce_lower_bound(scores)) == pytest.approx(total / 6, abs=1e-6)
    # closed form: a perfect critic (large on the diagonal only) reaches log N
    assert float(info_nce_lower_bound(torch.eye(6, dtype=torch.float64) * 50)) == pytest.approx(
        math.log(6), abs=1e-12
    )


def test_club_bounds_match_independent_computations():
    gen = torch.Generator().manual_seed(1)
    x, t = torch.randn(9, 4, generator=gen), torch.randn(9, 3, generator=gen)
    perm = torch.randint(9, (9,), generator=torch.Generator().manual_seed(3))
    # official CLUBv2: q(t|x) = N(t, I) -> mean ||t_i - t_pi(i)||^2 / 2
    ib, nll = information_bottleneck(x, t, "official", generator=torch.Generator().manual_seed(3))
    expected = sum(0.5 * float(((t[i] - t[perm[i]]) ** 2).sum()) for i in range(9)) / 9
    assert nll is None and float(ib) == pytest.approx(expected, rel=1e-6)
    # learned (paper): sampled CLUB with a Gaussian head, checked with torch.distributions
    head = GaussianClubHead(4, 3, hidden=5)
    x.requires_grad_(True)
    ib, nll = information_bottleneck(x, t, "learned", head, generator=torch.Generator().manual_seed(3))
    mu, logvar = head(x)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    with torch.no_grad():
        ref = [float(q.log_prob(t)[i].sum() - q.log_prob(t[perm[i]])[i].sum()) for i in range(9)]
    assert float(ib) == pytest.approx(sum(ref) / 9, abs=1e-5)
    ref_nll = -float(q.log_prob(t).sum(-1).mean()) - 3 * 0.5 * math.log(2 * math.pi)
    assert float(nll) == pytest.approx(ref_nll, abs=1e-5)
    # the bound trains the encoder (here x), the head learns only from its likelihood
    ib.backward()
    assert x.grad is not None and all(p.grad is None for p in head.parameters())
    nll.backward()
    assert all(p.grad is not None for p in head.parameters())


def test_anchored_tokens_are_the_cl_ch_band_of_gradient_norms():
    scores = torch.tensor(
        [
            [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 0.5],  # 10 tokens
            [3.0, 1.0, 2.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # 4 tokens, then padding (scores ignored)
        ]
    )
    mask = torch.tensor([[1] * 10, [1] * 4 + [0] * 6])
    sel = select_anchored_tokens(scores, mask, cl=0.5, ch=0.9)
    # row 0: ascending order 0.5,1,2,3,4,5,6,7,8,9 -> sorted positions ceil(5)=5 .. ceil(9)-1=8: 5,6,7,8
    assert set(sel[0].nonzero().flatten().tolist()) == {0, 8, 4, 6}
    # row 1: n=4 -> sorted positions ceil(2)=2 .. ceil(3.6)-1=3: scores 3 and 4
    assert sel[1].nonzero().flatten().tolist() == [0, 3]
    band = select_anchored_tokens(scores, mask, cl=0.3, ch=0.7)  # 10 * 0.7 = 7 exactly (float: 7.000...1)
    assert band[0].sum() == 4 and set(band[0].nonzero().flatten().tolist()) == {3, 7, 0, 8}
    assert not select_anchored_tokens(scores, mask, 0.5, 0.5).any()


def _objective_grads(net, fn, ids, mask, labels, **kw):
    net.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # dropout
    out = fn(
        net,
        ids,
        mask,
        labels,
        lambda t, **k: t.backward(**k),
        generator=torch.Generator().manual_seed(4),
        **kw,
    )
    return out, [p.grad.clone() for p in net.parameters() if p.grad is not None]


def test_zero_alpha_beta_is_exactly_freelb(tiny_backbone, batch):
    from robust_tickets.losses import freelb_objective
    from robust_tickets.models import MaskedModel

    net = MaskedModel(tiny_backbone, mode="dense")
    ids, mask, labels = batch
    common = dict(steps=2, eps0=0.05, eta=0.03, embeds_with_grad=True)
    loss_f, g_f = _objective_grads(net, freelb_objective, ids, mask, labels, **common)
    critic, head = InfoNCECritic(64, 64), GaussianClubHead(64, 64)

    def infobert(weight: float):
        return _objective_grads(
            net, infobert_objective, ids, mask, labels, critic=critic, club_head=head, alpha=weight,
            beta=weight, **common,
        )  # fmt: skip

    out, g_i = infobert(0.0)
    assert out["loss"] == pytest.approx(loss_f, rel=1e-6)  # FreeLB returns sum_k CE_k / K
    assert len(g_f) == len(g_i) and all(torch.equal(a, b) for a, b in zip(g_f, g_i, strict=True))
    assert all(p.grad is None for p in [*critic.parameters(), *head.parameters()])
    # and the regularisers do change the encoder gradient
    out, g_on = infobert(0.5)
    assert out["nce"] != 0.0 and out["ib"] != 0.0
    assert not all(torch.equal(a, b) for a, b in zip(g_f, g_on, strict=True))
    assert all(p.grad is not None for p in [*critic.parameters(), *head.parameters()])


def test_fit_infobert_trains_the_estimators_and_checkpoints_them(fit_tiny, tmp_path):
    from robust_tickets.module import TicketModule

    module, _, trainer = fit_tiny(
        [], method="infobert", epochs_retrain=1, infobert_alpha=0.1, infobert_beta=0.1
    )
    fresh = TicketModule(model_name="tiny-bert", method="infobert", attacks=[])
    for name in ("infobert_nce", "infobert_club_head"):
        before = dict(getattr(fresh, name).named_parameters())
        after = dict(getattr(module, name).named_parameters())
        assert any(not torch.equal(before[k], after[k]) for k in before), name
    assert module.budget["infobert"]["passes"] == 2 * module.budget["infobert"]["optimizer_steps"] > 0
    path = tmp_path / "ib.ckpt"
    trainer.save_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("infobert_nce.") for k in state) and any(
        k.startswith("infobert_club_head.") for k in state
    )
    loaded = TicketModule.load_from_checkpoint(path, map_location="cpu", attacks=[])  # evaluate / attack path
    assert torch.equal(loaded.infobert_nce.net[0].weight, module.infobert_nce.net[0].weight)
    dense = TicketModule(model_name="tiny-bert", method="freelb", attacks=[])
    assert list(module.net.state_dict()) == list(dense.net.state_dict())  # backbone layout unchanged
    assert not any(k.startswith("infobert") for k in dense.state_dict())
    official = TicketModule(model_name="tiny-bert", method="infobert", infobert_club="official", attacks=[])
    assert official.infobert_club_head is None
    with pytest.raises(ValueError, match="infobert_club"):
        TicketModule(model_name="tiny-bert", method="infobert", infobert_club="vclub", attacks=[])


def test_reproduce_accepts_infobert_only_on_request(capsys):
    from robust_tickets.cli import main
    from robust_tickets.reproduce import PRESETS, REPRODUCE_METHODS

    assert "infobert" in REPRODUCE_METHODS
    assert all("infobert" not in p.get("methods", "") for p in PRESETS.values())
    args = ["--preset", "synthetic", "--quick", "--model", "tiny-bert"]
    # passes the method check, stops at the next one (Table 4 ablations need the robust search)
    assert main(["reproduce", *args, "--methods", "infobert,reinit"]) == 1
    assert "reuse the robust search" in capsys.readouterr().err
    assert main(["reproduce", *args, "--methods", "infobert,lth"]) == 2
    assert "unknown 'lth'" in capsys.readouterr().err
