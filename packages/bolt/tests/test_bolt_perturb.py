"""Token-space views and the perturbation operators (spec §6 items 1–2)."""

from __future__ import annotations

import pytest
import torch
from bolt_ssl.perturb import (
    PerturbConfig,
    apply_mask,
    apply_mix,
    apply_noise,
    apply_realisation,
    apply_shuffle,
    count_tokens,
    cyclic_derangement,
    draw_realisation,
    make_generator,
    select_positions,
)
from bolt_ssl.pretrain import SSLConfig, token_byol_step

B, N, D = 6, 49, 64


def tokens(seed: int = 0, n: int = N, d: int = D) -> torch.Tensor:
    return torch.randn(
        B, n, d, generator=torch.Generator().manual_seed(seed)
    )  # Gaussian: no two tokens equal


@pytest.mark.parametrize("op", ["mask", "noise", "shuffle", "mix"])
def test_every_operator_is_the_identity_at_zero_strength(op):
    cfg = PerturbConfig(ops=[op])
    t = tokens()
    real = draw_realisation(torch.zeros(B), N, D, cfg, make_generator("cpu", 1))
    assert torch.equal(apply_realisation(t, real, cfg), t)


def test_mask_sets_exactly_round_alpha_s_n_tokens():
    s = torch.tensor([0.0, 0.1, 0.37, 0.5, 0.8, 1.0])
    count = count_tokens(s, 0.5, N)
    assert count.tolist() == [round(0.5 * float(v) * N) for v in s]
    chosen = select_positions(count, N, make_generator("cpu", 2))
    out = apply_mask(tokens(), chosen)
    assert ((out == 0).all(dim=-1).sum(dim=1) == count).all()
    learned = torch.full((D,), 7.0)
    out = apply_mask(tokens(), chosen, learned)
    assert ((out == 7.0).all(dim=-1).sum(dim=1) == count).all()


def test_shuffle_moves_exactly_k_tokens_and_keeps_the_multiset():
    s = torch.tensor([0.05, 0.1, 0.3, 0.5, 0.8, 1.0])
    k = count_tokens(s, 0.5, N)
    assert k[0] == 1  # K = 1: nothing can move
    t = tokens()
    out = apply_shuffle(t, cyclic_derangement(k, N, make_generator("cpu", 3)))
    changed = (out != t).any(dim=-1).sum(dim=1)
    assert changed.tolist() == [0 if int(v) < 2 else int(v) for v in k]
    for b in range(B):  # the same tokens, only their positions differ
        assert torch.equal(out[b].sort(dim=0).values, t[b].sort(dim=0).values)


def test_mix_takes_exactly_k_tokens_from_the_partner():
    t = tokens()
    s = torch.full((B,), 0.6)
    cfg = PerturbConfig(ops=["mix"])
    real = draw_realisation(s, N, D, cfg, make_generator("cpu", 4))
    out = apply_mix(t, real.mix, real.partner)
    k = count_tokens(s, cfg.alpha_mix, N)
    partner = t[(torch.arange(B) + 1) % B]
    assert ((out == partner).all(dim=-1) & (out != t).any(dim=-1)).sum(dim=1).tolist() == k.tolist()
    assert ((out != t).any(dim=-1).sum(dim=1) == k).all()
    with pytest.raises(ValueError, match="at least 2"):
        draw_realisation(torch.ones(1), N, D, cfg, make_generator("cpu", 4))


def test_noise_std_matches_alpha_s_sigma():
    # N·D = 200·64 = 12,800 ≥ 10⁴ entries per sample: the empirical std of α·s·σ·ε is within 5 % (≈ 0.6 % s.e.)
    t = tokens(n=200) * 3.0
    s = torch.tensor([0.2, 0.4, 0.5, 0.6, 0.8, 1.0])
    eps = torch.randn(t.shape, generator=torch.Generator().manual_seed(5))
    added = apply_noise(t, eps, s, alpha=1.0) - t
    sigma = t.flatten(1).std(dim=1)
    ratio = added.flatten(1).std(dim=1) / (s * sigma)
    assert torch.allclose(ratio, torch.ones(B), atol=0.05)


def test_same_seed_same_realisation_and_different_seed_differs():
    cfg = PerturbConfig(ops=["mask", "noise", "shuffle", "mix"])
    s = torch.full((B,), 0.7)
    a = draw_realisation(s, N, D, cfg, make_generator("cpu", 11, step=3))
    b = draw_realisation(s, N, D, cfg, make_generator("cpu", 11, step=3))
    c = draw_realisation(s, N, D, cfg, make_generator("cpu", 11, step=4))
    for field in ("mask", "noise", "source", "mix"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.source, c.source)


def _hooked(nets):
    """Count images through each branch's patch embedding and keep the pixel tensors entering it."""
    seen = {"online": [], "target": []}
    for name, enc in (("online", nets.online), ("target", nets.target)):
        enc.vit.patch_embed.register_forward_hook(
            lambda m, inp, out, n=name: seen[n].append(inp[0].detach().clone())
        )
    return seen


@pytest.mark.parametrize("image_aug", ["none", "shared"])
def test_one_patch_embedding_per_image_per_branch_and_identical_pixels(tiny_nets, images16, image_aug):
    nets = tiny_nets()
    seen = _hooked(nets)
    token_byol_step(nets, images16, SSLConfig("bolt", image_aug=image_aug), make_generator("cpu", 0))
    assert [x.shape[0] for x in seen["online"]] == [8] and [x.shape[0] for x in seen["target"]] == [8]
    assert torch.equal(
        seen["online"][0], seen["target"][0]
    )  # both views perturb the tokens of the same pixels


def test_shared_detached_uses_one_patch_embedding_in_total(tiny_nets, images16):
    nets = tiny_nets()
    seen = _hooked(nets)
    token_byol_step(
        nets, images16, SSLConfig("bolt", token_source="shared_detached"), make_generator("cpu", 0)
    )
    assert len(seen["online"]) == 1 and len(seen["target"]) == 0


def test_independent_image_aug_makes_two_embeddings_per_branch(tiny_nets, images16):
    nets = tiny_nets()
    seen = _hooked(nets)
    token_byol_step(nets, images16, SSLConfig("bolt", image_aug="independent"), make_generator("cpu", 0))
    assert len(seen["online"]) == 2 and len(seen["target"]) == 2
    assert not torch.equal(seen["online"][0], seen["online"][1])


def _encoder_inputs(nets, x, cfg, g):
    """The token sequences entering each branch's blocks (captured with forward pre-hooks on norm_pre)."""
    got = {}
    for name, enc in (("online", nets.online), ("target", nets.target)):
        enc.vit.norm_pre.register_forward_pre_hook(
            lambda m, inp, n=name: got.setdefault(n, inp[0].detach().clone())
        )
    token_byol_step(nets, x, cfg, g)
    return got


def test_views_at_zero_strength_are_identical_and_branches_agree_at_init(tiny_nets, images16):
    nets = tiny_nets()
    got = _encoder_inputs(nets, images16, SSLConfig("bolt", PerturbConfig(s_max=0.0), image_aug="none"),
                          make_generator("cpu", 0))  # fmt: skip
    online = got["online"]
    assert torch.equal(online[:8], online[8:])  # s1 = s2 = 0: view 1 == view 2
    nets = tiny_nets()
    got = _encoder_inputs(nets, images16, SSLConfig("bolt", image_aug="shared"), make_generator("cpu", 1))
    assert torch.equal(got["online"], got["target"])  # ξ = θ and shared realisations: same inputs per view
    assert not torch.equal(
        got["online"][:8], got["online"][8:]
    )  # s > 0: the two views differ (in tokens only)


def test_shuffling_before_the_positional_embedding_differs_from_after(tiny_nets, images16):
    nets = tiny_nets()
    t = nets.online.embed(images16)
    source = cyclic_derangement(torch.full((8,), 6), t.shape[1], make_generator("cpu", 9))
    before = nets.online.add_pos(apply_shuffle(t, source))
    z = nets.online.add_pos(t)
    after = torch.cat([z[:, :1], apply_shuffle(z[:, 1:], source)], dim=1)
    assert not torch.allclose(before, after)
    assert torch.equal(before[:, 0], z[:, 0])  # the CLS token is never changed


def test_cls_token_untouched_by_perturbation(tiny_nets, images16):
    nets = tiny_nets()
    got = _encoder_inputs(nets, images16, SSLConfig("bolt", PerturbConfig(ops=["mask", "noise", "shuffle", "mix"], s_max=1.0)),
                          make_generator("cpu", 2))  # fmt: skip
    cls = nets.online.vit.cls_token[0, 0] + nets.online.vit.pos_embed[0, 0]
    assert torch.allclose(got["online"][:, 0], cls.expand(16, -1))
