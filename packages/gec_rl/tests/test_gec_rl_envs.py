"""Criteria 1–2: exact V*, value iteration, Monte-Carlo checks, conversion of gymnasium envs, custom envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gec_rl.commands import monte_carlo_return
from gec_rl.envs import make_env, riverswim
from gec_rl.planning import backward_induction, evaluate_policy, greedy_policy, value_iteration
from scipy import stats

ALL_ENVS = [
    "frozenlake",
    "frozenlake8x8",
    "cliffwalking",
    "taxi",
    "riverswim",
    "deep_sea",
    "chain_det",
    "chain_stoch",
    "chain_bootdqn",
]


@pytest.mark.parametrize("name", ALL_ENVS)
def test_backward_induction_equals_value_iteration(name: str) -> None:
    mdp = make_env(name, horizon=20 if name != "taxi" else 8)
    H = mdp.horizon
    _, V = backward_induction(mdp.P, mdp.R, H)
    np.testing.assert_allclose(V[0], value_iteration(mdp.P, mdp.R, H), atol=1e-10, rtol=0)
    assert np.allclose(mdp.P.sum(-1), 1.0, atol=1e-12)


def test_regression_values() -> None:
    for name, expected in (("frozenlake", 0.199), ("riverswim", 3.397)):
        mdp = make_env(name, horizon=20)
        _, V = backward_induction(mdp.P, mdp.R, 20)
        assert abs(V[0] @ mdp.mu - expected) <= 1e-3, (name, V[0] @ mdp.mu)


@pytest.mark.parametrize("name", ["frozenlake", "riverswim", "cliffwalking", "taxi"])
def test_optimal_and_random_policy_match_monte_carlo(name: str) -> None:
    H = 20
    mdp = make_env(name, horizon=H)
    Q, V = backward_induction(mdp.P, mdp.R, H)
    pi_star = greedy_policy(Q)
    mean, se = monte_carlo_return(mdp, pi_star, 10_000, seed=1)
    v_star = V[0] @ mdp.mu
    assert abs(mean - v_star) <= 3 * se + 1e-12, (mean, v_star, se)
    if name in ("frozenlake", "riverswim"):
        uniform = np.full((H, mdp.S, mdp.A), 1.0 / mdp.A)
        v_unif = evaluate_policy(mdp.P, mdp.R, uniform)[0] @ mdp.mu
        mean, se = monte_carlo_return(mdp, uniform, 5_000, seed=2)
        assert abs(mean - v_unif) <= 3 * se, (mean, v_unif, se)


def test_frozenlake_duplicates_aggregated_and_terminal_routed() -> None:
    mdp = make_env("frozenlake")
    raw = gym.make("FrozenLake-v1").unwrapped.P
    assert [entry[1] for entry in raw[0][0]] == [0, 0, 4]  # the duplicate the conversion must merge
    assert mdp.P[0, 0, 0] == pytest.approx(2 / 3, abs=1e-12)
    bottom = mdp.absorbing
    assert bottom == 16 and np.all(mdp.P[bottom, :, bottom] == 1.0)
    assert np.all(mdp.r[bottom, :, bottom] == (0.0 - mdp.r_lo) / (mdp.r_hi - mdp.r_lo))
    # hole 5: every action from state 1 going down falls in, which terminates
    assert mdp.P[1, 1, 5] == 0 and mdp.P[1, 1, bottom] > 0
    # the goal transition keeps its reward 1
    assert mdp.r[14, 2, bottom] == 1.0


@pytest.mark.parametrize("name", ["cliffwalking", "taxi"])
def test_rescale_preserves_optimal_policy(name: str) -> None:
    H = 12
    mdp = make_env(name, horizon=H)
    raw_r = mdp.r * (mdp.r_hi - mdp.r_lo) + mdp.r_lo
    raw_R = np.einsum("ijk,ijk->ij", mdp.P, raw_r)
    Q_raw, V_raw = backward_induction(mdp.P, raw_R, H)
    Q, V = backward_induction(mdp.P, mdp.R, H)
    np.testing.assert_allclose(
        V, (V_raw - np.arange(H, -1, -1)[:, None] * mdp.r_lo) / (mdp.r_hi - mdp.r_lo), atol=1e-9
    )
    top2 = np.sort(Q_raw, -1)[..., -2:]
    untied = top2[..., 1] - top2[..., 0] > 1e-9
    assert np.array_equal(Q.argmax(-1)[untied], Q_raw.argmax(-1)[untied])
    assert 0.0 <= mdp.r.min() and mdp.r.max() <= 1.0


def test_cliffwalking_scale() -> None:
    mdp = make_env("cliffwalking")
    assert (mdp.r_lo, mdp.r_hi) == (-100.0, 0.0)
    assert mdp.rescale_reward(-1.0) == pytest.approx(0.99)
    assert mdp.r[mdp.absorbing, 0, mdp.absorbing] == 1.0


def test_riverswim_rows_match_definition() -> None:
    mdp = riverswim(6)
    assert mdp.P[0, 1, 0] == 0.4 and mdp.P[0, 1, 1] == 0.6
    assert mdp.P[3, 1, 4] == 0.35 and mdp.P[3, 1, 3] == 0.6 and mdp.P[3, 1, 2] == 0.05
    assert mdp.P[5, 1, 5] == 0.6 and mdp.P[5, 1, 4] == 0.4
    assert all(mdp.P[s, 0, max(0, s - 1)] == 1.0 for s in range(6))
    assert mdp.R[0, 0] == 0.005 and mdp.R[5, 1] == 1.0 and mdp.R.sum() == 1.005


def test_chains_and_deep_sea_rows() -> None:
    det = make_env("chain_det", n_states=5)
    assert det.P[4, 1, 4] == 1 and det.P[2, 0, 1] == 1 and det.R[4, 1] == 1
    stoch = make_env("chain_stoch", n_states=5)
    assert stoch.P[2, 1, 3] == pytest.approx(0.8) and stoch.P[2, 1, 1] == pytest.approx(0.2)
    boot = make_env("chain_bootdqn")
    assert boot.P[2, 1, 3] == 0.5 and boot.R[0, 0] == 0.01 and boot.horizon == 15
    sea = make_env("deep_sea", size=6)
    _, V = backward_induction(sea.P, sea.R, 6)
    assert V[0, 0] * (sea.r_hi - sea.r_lo) + 6 * sea.r_lo == pytest.approx(0.99)


def test_gym_model_matches_env_step() -> None:
    mdp = make_env("frozenlake")
    env = gym.make("FrozenLake-v1").unwrapped
    counts = np.zeros(mdp.S)
    for i in range(3000):
        env.reset(seed=i)
        env.s = 6  # a frozen cell; action 1 (down) slips left, down or right
        obs, _, terminated, _, _ = env.step(1)
        counts[mdp.absorbing if terminated else obs] += 1
    expected = mdp.P[6, 1] * counts.sum()
    keep = expected > 0
    assert counts[~keep].sum() == 0
    assert stats.chisquare(counts[keep], expected[keep]).pvalue > 0.01


def test_bad_env_ids() -> None:
    with pytest.raises(ValueError, match="unknown env"):
        make_env("not_an_env")
    with pytest.raises(ValueError, match="unknown gymnasium env id"):
        make_env("NoSuchEnv-v9")
    with pytest.raises(ValueError, match="exact regret needs the exact model P"):
        make_env("Blackjack-v1")


def test_exact_evaluation_on_random_mdp_matches_enumeration(random_mdp) -> None:
    """V^π of a stochastic time-dependent policy equals enumeration over all state-action paths (H = 3)."""
    import itertools

    mdp, H = random_mdp, 3
    rng = np.random.default_rng(5)
    policy = rng.dirichlet(np.ones(mdp.A), size=(H, mdp.S))
    total = 0.0
    for path in itertools.product(range(mdp.S), range(mdp.A), repeat=H):
        states, actions = path[0::2], path[1::2]
        prob = mdp.mu[states[0]]
        ret = 0.0
        for h in range(H):
            prob *= policy[h, states[h], actions[h]]
            ret += mdp.R[states[h], actions[h]]
            if h + 1 < H:
                prob *= mdp.P[states[h], actions[h], states[h + 1]]
        total += prob * ret
    assert evaluate_policy(mdp.P, mdp.R, policy)[0] @ mdp.mu == pytest.approx(total, abs=1e-12)
    _, V = backward_induction(mdp.P, mdp.R, H)
    assert V[0] @ mdp.mu >= total - 1e-12
