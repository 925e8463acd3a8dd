"""Criteria 5–6: the model-free corrected loss, the linear closed form and the model-based log-likelihood."""

from __future__ import annotations

import numpy as np
from gec_rl.envs import make_env
from gec_rl.losses import (
    TabularStats,
    Transitions,
    corrected_loss_bruteforce,
    corrected_loss_linear,
    corrected_loss_tabular,
    model_based_loss,
    squared_td_loss,
    tabular_targets,
)
from gec_rl.planning import backward_induction


def _random_transitions(rng: np.random.Generator, n: int, H: int, S: int, A: int) -> Transitions:
    return Transitions(
        h=rng.integers(0, H, n),
        s=rng.integers(0, S, n),
        a=rng.integers(0, A, n),
        r=rng.random(n),
        s_next=rng.integers(0, S, n),
    )


def test_corrected_loss_closed_form_equals_definition_and_bruteforce() -> None:
    rng = np.random.default_rng(0)
    H, S, A = 3, 4, 2
    data = _random_transitions(rng, 200, H, S, A)
    Q = rng.random((H, S, A)) * 3
    stats = TabularStats.from_transitions(data, H, S, A)
    closed = corrected_loss_tabular(Q, stats)
    # Σ n (Q − ȳ)² written out per (h, s, a) with explicit loops over the transitions
    explicit = np.zeros(H)
    for h in range(H):
        for s in range(S):
            for a in range(A):
                mask = (data.h == h) & (data.s == s) & (data.a == a)
                if mask.any():
                    v_next = Q[h + 1].max(-1)[data.s_next[mask]] if h + 1 < H else np.zeros(mask.sum())
                    y_bar = (data.r[mask] + v_next).mean()
                    explicit[h] += mask.sum() * (Q[h, s, a] - y_bar) ** 2
    np.testing.assert_allclose(closed, explicit, atol=1e-10, rtol=0)
    np.testing.assert_allclose(closed, corrected_loss_bruteforce(Q, data), atol=1e-10, rtol=0)
    assert np.all(squared_td_loss(Q, data) >= closed - 1e-12)


def _simulate_uniform(mdp, H: int, episodes: int, rng: np.random.Generator) -> Transitions:
    """Vectorised uniform-policy episodes on the true model (all episodes in parallel)."""
    cdf = np.cumsum(mdp.P, -1)
    s = np.zeros(episodes, dtype=np.int64)
    parts = []
    for h in range(H):
        a = rng.integers(0, mdp.A, episodes)
        u = rng.random(episodes)
        s_next = np.minimum((cdf[s, a] < u[:, None]).sum(-1), mdp.S - 1)
        parts.append((np.full(episodes, h), s, a, mdp.r[s, a, s_next], s_next))
        s = s_next
    h, s, a, r, s2 = (np.concatenate(x) for x in zip(*parts, strict=True))
    return Transitions(h, s, a, r, s2)


def test_corrected_loss_bounded_at_q_star_but_squared_td_grows() -> None:
    mdp = make_env("riverswim")
    H = 20
    Q_star, _ = backward_induction(mdp.P, mdp.R, H)
    rng = np.random.default_rng(1)
    corrected = {100: [], 10_000: []}
    uncorrected = {100: [], 10_000: []}
    for _ in range(20):
        for t in (100, 10_000):
            data = _simulate_uniform(mdp, H, t, rng)
            stats = TabularStats.from_transitions(data, H, mdp.S, mdp.A)
            corrected[t].append(corrected_loss_tabular(Q_star, stats).sum())
            uncorrected[t].append(squared_td_loss(Q_star, data).sum())
    ratio_corrected = np.mean(corrected[10_000]) / np.mean(corrected[100])
    ratio_uncorrected = np.mean(uncorrected[10_000]) / np.mean(uncorrected[100])
    assert ratio_corrected <= 3.0, ratio_corrected
    assert ratio_uncorrected >= 50.0, ratio_uncorrected


def test_linear_closed_form_equals_lstsq_and_tabular() -> None:
    rng = np.random.default_rng(2)
    n, d = 60, 5
    phi = rng.normal(size=(n, d))
    y = rng.normal(size=n)
    theta = rng.normal(size=d)
    w, *_ = np.linalg.lstsq(phi, y, rcond=None)
    brute = ((phi @ theta - y) ** 2).sum() - ((phi @ w - y) ** 2).sum()
    assert abs(corrected_loss_linear(theta, phi, y) - brute) <= 1e-8
    # one-hot features: the linear form equals the tabular Σ n (Q − ȳ)² at one step
    S, A = 3, 2
    data = _random_transitions(rng, 80, 1, S, A)
    Q = rng.random((1, S, A))
    one_hot = np.eye(S * A)[data.s * A + data.a]
    linear = corrected_loss_linear(Q[0].reshape(-1), one_hot, data.r)
    tabular = corrected_loss_tabular(Q, TabularStats.from_transitions(data, 1, S, A))[0]
    assert abs(linear - tabular) <= 1e-10
    targets = tabular_targets(Q, TabularStats.from_transitions(data, 1, S, A))
    assert targets.shape == (1, S, A)


def test_model_based_loss_is_negative_log_likelihood() -> None:
    rng = np.random.default_rng(3)
    S, A = 4, 2
    P = rng.dirichlet(np.ones(S), size=(S, A))
    data = _random_transitions(rng, 50, 1, S, A)
    nll = -sum(np.log(P[s, a, s2]) for s, a, s2 in zip(data.s, data.a, data.s_next, strict=True))
    assert abs(model_based_loss(P, data) - nll) <= 1e-10
    assert abs(model_based_loss(P, data, eta=0.5) - 0.5 * nll) <= 1e-10
