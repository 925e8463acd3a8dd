"""Criteria 3, 4, 12, 16: posterior reductions, SIR optimism, parameter checks, sparse sampling/planning."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
from gec_rl.agents import Task, make_agent
from gec_rl.agents.model_based import PSRL, OPSModelBased
from gec_rl.envs import make_env
from gec_rl.planning import expected_reward, plan, plan_sparse
from gec_rl.posteriors import (
    block_to_dense,
    gamma_at,
    sample_dirichlet_rows,
    sample_dirichlet_sparse,
    sample_models_sparse,
    sir_probabilities,
    sir_select,
    sparse_expected_reward,
)
from gec_rl.regret import task_for
from scipy import stats


def _counts(S: int, A: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 6, size=(S, A, S)).astype(float)
    counts[0, 0] = [7.0, 0.0, 3.0, *[0.0] * (S - 3)]
    return counts


def test_psrl_marginals_are_beta() -> None:
    S, alpha0 = 4, 0.25
    counts = np.zeros((S, 1, S))
    counts[0, 0] = [7, 0, 3, 1]
    draws = sample_dirichlet_rows(np.random.default_rng(0), alpha0 + counts, 10_000)[:, 0, 0]
    total = S * alpha0 + counts[0, 0].sum()
    for j in range(S):
        a = alpha0 + counts[0, 0, j]
        assert stats.kstest(draws[:, j], stats.beta(a, total - a).cdf).pvalue > 0.01


def test_ops_gamma0_eta1_m1_is_psrl() -> None:
    """γ = 0, η = 1, M = 1 consumes the RNG exactly like PSRL, so both produce the same draws (hence laws)."""
    mdp = make_env("riverswim")
    task = task_for(mdp, 20, 100)
    ops = OPSModelBased(task, np.random.default_rng(5), M=1, eta=1.0, gamma=0.0, gamma_schedule="constant")
    psrl = PSRL(task, np.random.default_rng(5))
    counts = _counts(mdp.S, mdp.A)
    ops.counts, psrl.counts = counts.copy(), counts.copy()
    for t in range(1, 30):
        ops.begin_episode(t)
        psrl.begin_episode(t)
        np.testing.assert_array_equal(ops.Q, psrl.Q)
    # the γ = 0 switch also turns off the sqrt_t schedule
    assert gamma_at(50, "sqrt_t", 0.0) == 0.0


def test_eta_half_halves_concentration() -> None:
    counts = np.array([[[500.0, 300.0, 200.0]]])
    rng = np.random.default_rng(1)
    full = sample_dirichlet_rows(rng, 1 / 3 + 1.0 * counts, 20_000)[:, 0, 0, 0]
    half = sample_dirichlet_rows(rng, 1 / 3 + 0.5 * counts, 20_000)[:, 0, 0, 0]
    ratio = half.var() / full.var()
    assert 1.8 <= ratio <= 2.2, ratio


def test_sir_selection_frequencies_match_softmax() -> None:
    values = np.array([0.1, 0.5, 0.3, 0.45])
    gamma = 4.0
    rng = np.random.default_rng(2)
    picks = np.bincount([sir_select(rng, values, gamma) for _ in range(20_000)], minlength=4)
    expected = sir_probabilities(values, gamma) * picks.sum()
    assert stats.chisquare(picks, expected).pvalue > 0.01
    w = np.exp(gamma * values)
    np.testing.assert_allclose(sir_probabilities(values, gamma), w / w.sum(), rtol=1e-12)


def test_sir_softmax_is_overflow_safe_and_limits() -> None:
    values = np.array([1000.0, 999.0, 1000.0])
    probs = sir_probabilities(values, 1e6)
    assert np.all(np.isfinite(probs)) and probs[1] == 0.0
    np.testing.assert_allclose(sir_probabilities(values, math.inf), [0.5, 0.0, 0.5])
    np.testing.assert_allclose(sir_probabilities(values, 0.0), [1 / 3] * 3)
    rng = np.random.default_rng(0)
    picks = {sir_select(rng, values, math.inf) for _ in range(200)}
    assert picks == {0, 2}  # random tie-breaking among the argmaxes


def test_selected_value_nondecreasing_in_gamma() -> None:
    """On a fixed posterior sample of M models, E[V_{1,f^t}] under SIR is non-decreasing in γ."""
    mdp = make_env("frozenlake")
    task = task_for(mdp, 20, 100)
    agent = OPSModelBased(task, np.random.default_rng(3), M=16)
    agent.counts = _counts(mdp.S, mdp.A)
    _, values = agent.sample_and_plan()
    grid = [0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 50.0, 1e3, math.inf]
    expectations = [float(sir_probabilities(values, g) @ values) for g in grid]
    assert all(b >= a - 1e-15 for a, b in itertools.pairwise(expectations))
    assert expectations[0] == pytest.approx(values.mean(), abs=1e-14)
    assert expectations[-1] == pytest.approx(values.max(), abs=1e-14)


def test_max_of_j_is_ops_with_infinite_gamma() -> None:
    mdp = make_env("riverswim")
    task = task_for(mdp, 20, 100)
    moj = make_agent("max_of_j:J=6", task, np.random.default_rng(9))
    ops = make_agent("ops_mb:M=6:gamma=inf:gamma_schedule=constant", task, np.random.default_rng(9))
    counts = _counts(mdp.S, mdp.A, 4)
    moj.counts, ops.counts = counts.copy(), counts.copy()
    for t in range(1, 20):
        moj.begin_episode(t)
        ops.begin_episode(t)
        np.testing.assert_array_equal(moj.Q, ops.Q)
        assert moj.model_value == pytest.approx(moj.last_values.max())


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("ops_mb:eta=0", "eta"),
        ("ops_mb:eta=-1", "eta"),
        ("ops_mb:gamma=-0.5", "gamma"),
        ("ops_mb:M=0", "M"),
        ("ops_mb:gamma_schedule=cubic", "schedule"),
        ("ops_mb:bogus=1", "bogus"),
        ("nope", "unknown agent"),
    ],
)
def test_invalid_parameters_raise(spec: str, match: str) -> None:
    task = Task(S=3, A=2, H=4, r=np.zeros((3, 2, 3)), mu=np.array([1.0, 0, 0]))
    with pytest.raises(ValueError, match=match):
        make_agent(spec, task, np.random.default_rng(0))


def _dense_and_sparse_from_uniforms(counts: np.ndarray, alpha0: float, tau: float, seed: int):
    """One Dirichlet draw per row from shared (G, U): dense keeps every entry, sparse drops U ≤ τ^{α} entries."""
    rng = np.random.default_rng(seed)
    alpha = alpha0 + counts
    G = rng.standard_gamma(alpha + 1.0)
    U = rng.random(alpha.shape)
    logw = np.log(G) + np.log(U) / alpha
    keep = (counts > 0) | (U > tau**alpha0)
    dense = np.exp(logw - logw.max(-1, keepdims=True))
    dense /= dense.sum(-1, keepdims=True)
    sparse_w = np.where(keep, np.exp(logw - logw.max(-1, keepdims=True)), 0.0)
    sparse_w /= sparse_w.sum(-1, keepdims=True)
    return dense, sparse_w


def test_sparse_planning_agrees_with_dense_on_same_uniforms() -> None:
    mdp = make_env("taxi", horizon=20)
    S, A, M = mdp.S, mdp.A, 2
    rng = np.random.default_rng(0)
    counts = np.zeros((S, A, S))
    idx = rng.integers(0, S, size=4000)
    counts[idx, rng.integers(0, A, size=4000), rng.integers(0, S, size=4000)] += 1
    dense, sparse_dense = zip(
        *[_dense_and_sparse_from_uniforms(counts, 1 / S, 1e-12, m) for m in range(M)], strict=True
    )
    P = np.stack(dense)
    _, V_dense = plan(P, expected_reward(P, mdp.r), 20)
    blocks = sp.block_diag([sp.csr_matrix(p.reshape(S * A, S)) for p in sparse_dense], format="csr")
    assert blocks.nnz < 0.2 * M * S * A * S
    _, V_sparse = plan_sparse(blocks, sparse_expected_reward(blocks, mdp.r, M), 20)
    assert np.abs(V_sparse - V_dense).max() <= 1e-9


def test_sparse_sampler_marginals_pass_ks() -> None:
    S, alpha0, M = 5, 0.2, 4000
    counts = np.zeros((S, 1, S))
    counts[0, 0] = [6, 0, 2, 0, 1]
    block = sample_dirichlet_sparse(np.random.default_rng(4), counts, alpha0, 1.0, M)
    dense = block_to_dense(block, M, S, 1)
    rows = dense[:, 0, 0]
    np.testing.assert_allclose(rows.sum(-1), 1.0, atol=1e-12)
    total = S * alpha0 + counts[0, 0].sum()
    for j in range(S):
        a = alpha0 + counts[0, 0, j]
        assert stats.kstest(rows[:, j], stats.beta(a, total - a).cdf).pvalue > 0.01, j
    # an all-unvisited row: the dropped entries are below τ, the marginals are still Beta(α₀, (S−1)α₀)
    unvisited = dense[:, 1, 0]
    assert stats.kstest(unvisited[:, 0], stats.beta(alpha0, (S - 1) * alpha0).cdf).pvalue > 0.01


def test_fused_sparse_rewards_equal_separate_computation() -> None:
    mdp = make_env("frozenlake")
    counts = _counts(mdp.S, mdp.A, 2)
    block, R = sample_models_sparse(np.random.default_rng(0), counts, 1 / mdp.S, 0.5, 3, mdp.r)
    np.testing.assert_allclose(R, sparse_expected_reward(block, mdp.r, 3), atol=1e-13)
    dense = block_to_dense(block, 3, mdp.S, mdp.A)
    np.testing.assert_allclose(R, expected_reward(dense, mdp.r), atol=1e-13)
    np.testing.assert_allclose(dense.sum(-1), 1.0, atol=1e-12)


def test_ops_sparse_and_dense_paths_both_run_on_taxi() -> None:
    mdp = make_env("taxi", horizon=10)
    task = task_for(mdp, 10, 10)
    for sampler in ("sparse", "dense"):
        agent = OPSModelBased(task, np.random.default_rng(0), M=2, sampler=sampler)
        agent.begin_episode(1)
        assert agent.Q.shape == (10, mdp.S, mdp.A) and np.isfinite(agent.model_value)
