"""Formula tests: filter, encoders, high-confidence set, losses, k-means (spec §6 items 1–6)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ccgc.kmeans import kmeans, legacy_candidates, pairwise_sq_dists
from ccgc.losses import (
    ccgc_loss,
    dense_warmup_loss,
    high_confidence_mask,
    scgc_loss,
    warmup_identity_loss,
)
from ccgc.models import SiameseLinearEncoder
from ccgc.smoothing import normalized_adjacency, smooth, validate_edge_index


def _random_graph(n: int, p: float, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < p, 1)
    adj = (upper | upper.T).astype(np.int64)
    return adj, torch.from_numpy(np.stack(np.nonzero(adj))).long()


# ---------------------------------------------------------------- 1. filter
@pytest.mark.parametrize("t", [1, 2, 4])
def test_filter_equals_dense_reference(dense_filter, t):
    adj, edges = _random_graph(40, 0.1, seed=t)
    x = np.random.default_rng(1).normal(size=(40, 7))
    got = smooth(edges, torch.from_numpy(x), t).numpy()
    np.testing.assert_allclose(got, dense_filter(adj, x, t), atol=1e-6, rtol=0)


def test_filter_ignores_input_self_loops_and_isolated_nodes(dense_filter):
    adj, edges = _random_graph(30, 0.08, seed=3)
    adj[5, :] = adj[:, 5] = 0  # isolated node
    edges = torch.from_numpy(np.stack(np.nonzero(adj))).long()
    looped = torch.cat([edges, torch.tensor([[0, 5, 7], [0, 5, 7]])], dim=1)
    x = torch.randn(30, 4, dtype=torch.float64)
    plain, with_loops = smooth(edges, x, 3), smooth(looped, x, 3)
    torch.testing.assert_close(plain, with_loops, rtol=0, atol=1e-12)
    torch.testing.assert_close(plain[5], x[5])  # an isolated node keeps its features
    np.testing.assert_allclose(plain.numpy(), dense_filter(adj, x.numpy(), 3), atol=1e-6)


def test_filter_is_sparse_with_spectrum_in_minus_one_one():
    _, edges = _random_graph(25, 0.2, seed=4)
    h = normalized_adjacency(edges, 25, dtype=torch.float64)
    assert h.layout == torch.sparse_csr
    eig = np.linalg.eigvalsh(h.to_dense().numpy())
    assert eig.max() <= 1 + 1e-9 and eig.min() > -1


def test_filter_rejects_bad_input():
    with pytest.raises(ValueError, match="not symmetric"):
        validate_edge_index(torch.tensor([[0], [1]]), 3)
    with pytest.raises(ValueError, match="node ids"):
        validate_edge_index(torch.tensor([[0, 5], [5, 0]]), 3)
    with pytest.raises(ValueError, match="rows"):
        smooth(torch.tensor([[0, 1], [1, 0]]), torch.randn(4, 2), 2, num_nodes=3)


# ---------------------------------------------------------------- 2. encoders
def test_encoders_unshared_unit_norm_and_fusion_not_renormalised():
    torch.manual_seed(0)
    enc = SiameseLinearEncoder(12, 8)
    assert enc.view1.weight.data_ptr() != enc.view2.weight.data_ptr()
    assert not torch.equal(enc.view1.weight, enc.view2.weight)
    x = torch.randn(50, 12)
    z1, z2 = enc(x)
    torch.testing.assert_close(z1.norm(dim=1), torch.ones(50), atol=1e-6, rtol=0)
    torch.testing.assert_close(z2.norm(dim=1), torch.ones(50), atol=1e-6, rtol=0)
    e = enc.embed(x)
    torch.testing.assert_close(e, (z1 + z2) / 2)
    assert (e.norm(dim=1) < 1 - 1e-3).any()


# ---------------------------------------------------------------- 3. high-confidence set
def test_high_confidence_size_ordering_monotone():
    gen = torch.Generator().manual_seed(0)
    dis = torch.rand(101, 4, generator=gen)
    conf = dis.min(1).values
    sizes = []
    for tau in (0.1, 0.3, 0.5, 0.8, 1.0):
        mask = high_confidence_mask(dis, tau)
        expected = int((conf < torch.sort(conf).values[min(int(101 * tau), 100)]).sum()) if tau < 1 else 101
        assert int(mask.sum()) == expected
        if tau < 1:
            assert int(mask.sum()) == int(101 * tau)  # no ties in continuous data
            assert conf[mask].max() < conf[~mask].min()
        sizes.append(int(mask.sum()))
    assert sizes == sorted(sizes)
    with pytest.raises(ValueError):
        high_confidence_mask(dis, 0.0)


# ---------------------------------------------------------------- 4. cluster-guided loss
def _hand_case():
    z1 = F.normalize(
        torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 1]]), dim=1
    )
    z2 = F.normalize(
        torch.tensor([[1.0, 0.2, 0], [1, 0, 0], [0, 1, 0.3], [0, 1, 0], [0.1, 0, 1], [0, 0, 1]]), dim=1
    )
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    return z1, z2, labels


def _closed_form(z1, z2, labels, clusters, k):
    pos = sum(float(2 - 2 * z1[i] @ z2[i]) for i in range(6) if int(labels[i]) in clusters) / k
    c1 = torch.stack([F.normalize(z1[labels == c].mean(0), dim=0) for c in clusters])
    c2 = torch.stack([F.normalize(z2[labels == c].mean(0), dim=0) for c in clusters])
    s = (c1 @ c2.T).numpy()
    off = sum(s[i, j] ** 2 for i in range(len(clusters)) for j in range(len(clusters)) if i != j)
    return pos, off / len(clusters) ** 2


def test_ccgc_loss_closed_form():
    z1, z2, labels = _hand_case()
    out = ccgc_loss(z1, z2, labels, torch.ones(6, dtype=torch.bool), 0.5, 3, 1.0, shuffle_pairs=False)
    pos, neg = _closed_form(z1, z2, labels, [0, 1, 2], 3)
    assert out.pos.item() == pytest.approx(pos, rel=1e-6)
    assert out.neg.item() == pytest.approx(neg, rel=1e-6)
    assert out.loss.item() == pytest.approx(pos + 0.5 * neg, rel=1e-6)
    assert out.clusters_used == 3 and not out.skipped


def test_ccgc_loss_pair_normalisation_is_a_mean_and_independent_of_n():
    """``pairs`` divides Σ(2 − 2cos) by the number of pairs; ``clusters`` (official) by K, so it grows with N.

    Duplicating every node leaves the centres (L_neg) and the pair mean unchanged but doubles the official sum:
    the official L_pos outweighs α·L_neg by a factor ≈ #pairs/K, which is what collapses the corrected (zero_grad)
    optimisation on Cora; the per-pair mean keeps the ratio of the two terms independent of the graph size.
    """
    z1, z2, labels = _hand_case()
    everyone = torch.ones(6, dtype=torch.bool)
    pos, neg = _closed_form(z1, z2, labels, [0, 1, 2], 3)
    mean = ccgc_loss(z1, z2, labels, everyone, 0.5, 3, 1.0, shuffle_pairs=False, pos_normalization="pairs")
    assert mean.pos.item() == pytest.approx(pos * 3 / 6, rel=1e-6)  # 6 pairs, K = 3
    assert mean.neg.item() == pytest.approx(neg, rel=1e-6)
    assert mean.loss.item() == pytest.approx(pos / 2 + 0.5 * neg, rel=1e-6)
    doubled = [torch.cat([z, z]) for z in (z1, z2, labels)]
    every12 = torch.ones(12, dtype=torch.bool)
    for norm, factor in (("pairs", 1.0), ("clusters", 2.0)):
        one = ccgc_loss(z1, z2, labels, everyone, 0.5, 3, 1.0, shuffle_pairs=False, pos_normalization=norm)
        two = ccgc_loss(*doubled, every12, 0.5, 3, 1.0, shuffle_pairs=False, pos_normalization=norm)
        assert two.pos.item() == pytest.approx(factor * one.pos.item(), rel=1e-6)
        assert two.neg.item() == pytest.approx(one.neg.item(), rel=1e-6)
    with pytest.raises(ValueError, match="pos_normalization"):
        ccgc_loss(z1, z2, labels, everyone, pos_normalization="sum")


def test_ccgc_loss_skip_first_cluster_drops_smallest_label():
    z1, z2, labels = _hand_case()
    labels = labels + 4  # labels 4, 5, 6: the smallest present label is 4
    out = ccgc_loss(z1, z2, labels, torch.ones(6, dtype=torch.bool), 0.5, 3, 1.0, None, True, False)
    pos, neg = _closed_form(z1, z2, labels, [5, 6], 3)  # L_pos still divided by K = 3
    assert out.clusters_used == 2
    assert out.pos.item() == pytest.approx(pos, rel=1e-6)
    assert out.neg.item() == pytest.approx(neg, rel=1e-6)


def test_ccgc_loss_zero_cases_and_guards():
    eye = torch.eye(3)
    z = eye[[0, 0, 1, 1, 2, 2]]
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    everyone = torch.ones(6, dtype=torch.bool)
    out = ccgc_loss(z, z, labels, everyone, 0.5, 3, 1.0, torch.Generator().manual_seed(0))
    assert out.neg.item() == pytest.approx(0.0, abs=1e-12)  # orthogonal centres
    assert out.pos.item() == pytest.approx(0.0, abs=1e-6)  # coinciding views within clusters
    assert out.skipped  # L_pos == 0 skips the epoch
    one_cluster = ccgc_loss(z, z, torch.zeros(6, dtype=torch.long), everyone, 0.5, 3)
    assert one_cluster.skipped and one_cluster.clusters_used == 1


def test_ccgc_loss_subsample_sizes_and_randomness():
    torch.manual_seed(0)
    z1, z2 = F.normalize(torch.randn(40, 5), dim=1), F.normalize(torch.randn(40, 5), dim=1)
    labels = torch.arange(40) % 2
    mask = torch.ones(40, dtype=torch.bool)
    a = ccgc_loss(z1, z2, labels, mask, 0.5, 2, 0.8, torch.Generator().manual_seed(1))
    b = ccgc_loss(z1, z2, labels, mask, 0.5, 2, 0.8, torch.Generator().manual_seed(1))
    c = ccgc_loss(z1, z2, labels, mask, 0.5, 2, 0.8, torch.Generator().manual_seed(2))
    assert a.loss.item() == b.loss.item() != c.loss.item()
    # 16 pairs per cluster, each term 2 − 2cos ∈ [0, 4]
    assert 0 <= a.pos.item() <= 2 * 16 * 4 / 2


# ---------------------------------------------------------------- 5. warm-up and SCGC losses
def test_warmup_identity_equals_dense_value_and_gradients():
    gen = torch.Generator().manual_seed(0)
    base1 = torch.randn(500, 32, generator=gen, dtype=torch.float64)
    base2 = torch.randn(500, 32, generator=gen, dtype=torch.float64)
    grads = []
    values = []
    for fn in (warmup_identity_loss, dense_warmup_loss):
        a, b = base1.clone().requires_grad_(), base2.clone().requires_grad_()
        z1, z2 = F.normalize(a, dim=1), F.normalize(b, dim=1)
        loss = fn(z1, z2)
        loss.backward()
        values.append(loss.item())
        grads.append((a.grad.clone(), b.grad.clone()))
    assert values[0] == pytest.approx(values[1], rel=1e-6)
    for mine, ref in zip(grads[0], grads[1], strict=True):
        torch.testing.assert_close(mine, ref, rtol=1e-6, atol=1e-12)


def test_wrong_gram_variant_is_detected():
    gen = torch.Generator().manual_seed(1)
    z1 = F.normalize(torch.randn(200, 16, generator=gen, dtype=torch.float64), dim=1)
    z2 = F.normalize(torch.randn(200, 16, generator=gen, dtype=torch.float64), dim=1)
    n = 200
    wrong = ((z1.T @ z2).pow(2).sum() - 2 * (z1 * z2).sum() + n) / n**2  # ‖Z1ᵀZ2‖_F² mix-up
    dense = dense_warmup_loss(z1, z2).item()
    assert warmup_identity_loss(z1, z2).item() == pytest.approx(dense, rel=1e-9)
    assert wrong.item() != pytest.approx(dense, rel=1e-3)


def test_warmup_runs_on_200k_nodes_fast():
    gen = torch.Generator().manual_seed(0)
    z1 = F.normalize(torch.randn(200_000, 16, generator=gen), dim=1).requires_grad_()
    z2 = F.normalize(torch.randn(200_000, 16, generator=gen), dim=1)
    start = time.perf_counter()
    loss = warmup_identity_loss(z1, z2)
    loss.backward()
    assert time.perf_counter() - start < 20
    # independent estimate: E[(z1·z2)²] = 1/d off the diagonal, so the mean is ≈ 1/d
    assert loss.item() == pytest.approx(1 / 16, rel=0.02)


def test_scgc_loss_equals_dense_mse():
    adj, edges = _random_graph(60, 0.1, seed=5)
    a_hat = torch.from_numpy(adj + np.eye(60))
    gen = torch.Generator().manual_seed(2)
    base1 = torch.randn(60, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    base2 = torch.randn(60, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    edges_hat = torch.cat([edges, torch.arange(60).repeat(2, 1)], dim=1)
    mine = scgc_loss(F.normalize(base1, dim=1), F.normalize(base2, dim=1), edges_hat)
    g_mine = torch.autograd.grad(mine, (base1, base2))
    ref = F.mse_loss(F.normalize(base1, dim=1) @ F.normalize(base2, dim=1).T, a_hat)
    g_ref = torch.autograd.grad(ref, (base1, base2))
    assert mine.item() == pytest.approx(ref.item(), rel=1e-9)
    for x, y in zip(g_mine, g_ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-12)


# ---------------------------------------------------------------- 6. k-means
def _blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0], [10, 0], [0, 10], [10, 10]])
    y = torch.arange(200) % 4
    return centres[y] + 0.5 * torch.randn(200, 2, generator=gen), y


def test_kmeans_dis_and_blobs():
    """k-means++ with restarts finds four well-separated blobs from every seed; the legacy rule is exactly the
    official procedure (its initialisation, then one Lloyd run, no restarts), which may stop in a local optimum."""
    from ccgc.evaluate import cluster_acc
    from ccgc.kmeans import legacy_init, lloyd

    x, y = _blobs()
    for seed in range(4):
        result = kmeans(x, 4, generator=torch.Generator().manual_seed(seed))
        assert cluster_acc(y, result.labels) == 100.0
        brute = ((x[:, None, :] - result.centers[None]) ** 2).sum(-1)
        assert result.labels.tolist() == brute.argmin(1).tolist()
        legacy = kmeans(x, 4, generator=torch.Generator().manual_seed(seed), legacy_init_rule=True)
        official = lloyd(x, legacy_init(x, 4, torch.Generator().manual_seed(seed)))
        assert torch.equal(legacy.labels, official.labels) and torch.equal(legacy.centers, official.centers)
        assert legacy.inertia == pytest.approx(official.inertia)
        brute = ((x[:, None, :] - legacy.centers[None]) ** 2).sum(-1)
        assert legacy.labels.tolist() == brute.argmin(1).tolist()  # a Lloyd fixed point
        assert legacy.inertia >= result.inertia * (1 - 1e-6)  # restarts never lose to a single run here
    d = pairwise_sq_dists(x, result.centers, chunk_size=7)
    brute = ((x[:, None, :] - result.centers[None]) ** 2).sum(-1)
    torch.testing.assert_close(d, brute, rtol=1e-4, atol=1e-4)


def test_kmeans_empty_cluster_has_no_nan_and_bad_k_raises():
    from ccgc.kmeans import lloyd

    x, _ = _blobs()
    init = torch.tensor([[0.0, 0], [10, 0], [0, 10], [1000, 1000]])  # the last centre attracts no point
    result = lloyd(x, init)
    assert torch.isfinite(result.centers).all()
    assert torch.bincount(result.labels, minlength=4).min() > 0
    with pytest.raises(ValueError, match="K must be"):
        kmeans(x[:3], 4)


def test_legacy_init_picks_smallest_sum_of_all_distances():
    from ccgc.kmeans import legacy_init

    x, _ = _blobs(3)
    candidates = legacy_candidates(x, 4, torch.Generator().manual_seed(7))
    scores = [float(((x[:, None, :] - x[idx][None]) ** 2).sum()) for idx in candidates]
    expected = x[candidates[int(np.argmin(scores))]]
    chosen = legacy_init(x, 4, torch.Generator().manual_seed(7))
    torch.testing.assert_close(chosen, expected)


def test_factored_linear_warmup_equals_dense():
    """Without forming Z: same value and gradients as the dense mean((Z1Z2ᵀ − I)²) for linear encoders."""
    from ccgc.losses import warmup_identity_loss_linear

    torch.manual_seed(0)
    x = torch.randn(300, 6, dtype=torch.float64)
    enc = SiameseLinearEncoder(6, 20).double()
    params = list(enc.parameters())
    fast = warmup_identity_loss_linear(x, enc.view1.weight, enc.view1.bias, enc.view2.weight, enc.view2.bias)
    g_fast = torch.autograd.grad(fast, params)
    z1, z2 = enc(x)
    dense = dense_warmup_loss(z1, z2)
    g_dense = torch.autograd.grad(dense, params)
    assert fast.item() == pytest.approx(dense.item(), rel=1e-9)
    for a, b in zip(g_fast, g_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
