"""Criterion 6 (POMDP part): the forward-algorithm likelihood equals brute-force enumeration for H ≤ 4."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from gec_rl.pomdp import (
    TabularPOMDP,
    brute_force_likelihood,
    evaluate_history_policy,
    ffbs,
    forward_log_likelihood,
    plan_histories,
    run_pomdp,
    sample_episode,
    tiger,
)


def random_pomdp(seed: int) -> TabularPOMDP:
    rng = np.random.default_rng(seed)
    S, A, n_obs = 3, 2, 2
    return TabularPOMDP(
        "random",
        rng.dirichlet(np.ones(S), size=(A, S)),
        rng.dirichlet(np.ones(n_obs), size=(A, S)),
        rng.random((S, A)),
        rng.dirichlet(np.ones(S)),
    )


@pytest.mark.parametrize("pomdp", [tiger(), random_pomdp(0)], ids=["tiger", "random3"])
def test_forward_equals_brute_force(pomdp: TabularPOMDP) -> None:
    for H in (1, 2, 3, 4):
        for actions in itertools.product(range(pomdp.A), repeat=H):
            for observations in itertools.product(range(pomdp.n_obs), repeat=H):
                brute = brute_force_likelihood(pomdp, np.array(actions), np.array(observations))
                fwd = forward_log_likelihood(pomdp, np.array(actions), np.array(observations))
                assert np.exp(fwd) == pytest.approx(brute, rel=1e-10, abs=1e-15)


def test_forward_with_rewards_equals_brute_force() -> None:
    pomdp = tiger()
    rng = np.random.default_rng(1)
    _, policy = plan_histories(pomdp, 4)
    for _ in range(20):
        actions, observations, rewards = sample_episode(pomdp, policy, 4, rng)
        brute = brute_force_likelihood(pomdp, actions, observations, rewards)
        assert brute > 0
        assert np.exp(forward_log_likelihood(pomdp, actions, observations, rewards)) == pytest.approx(brute)


def test_tiger_exact_planning() -> None:
    pomdp = tiger()
    v1, policy = plan_histories(pomdp, 1)
    assert policy[()] == 0 and v1 == pytest.approx(99 / 110)  # listening beats a 50/50 door at H = 1
    v4, policy4 = plan_histories(pomdp, 4)
    assert evaluate_history_policy(pomdp, policy4, 4) == pytest.approx(v4, abs=1e-12)
    always_listen = evaluate_history_policy(pomdp, {}, 4)
    assert always_listen == pytest.approx(4 * 99 / 110) and v4 >= always_listen
    # Monte-Carlo check of the exact value of the optimal policy
    rng = np.random.default_rng(2)
    returns = [sample_episode(pomdp, policy4, 4, rng)[2].sum() for _ in range(4000)]
    assert abs(np.mean(returns) - v4) <= 3 * np.std(returns) / np.sqrt(len(returns))


def test_ffbs_draws_paths_consistent_with_rewards() -> None:
    pomdp = tiger()
    rng = np.random.default_rng(3)
    _, policy = plan_histories(pomdp, 4)
    episodes = [sample_episode(pomdp, policy, 4, rng) for _ in range(50)]
    acts, obs, rews = (np.stack(x) for x in zip(*episodes, strict=True))
    path = ffbs(pomdp, acts, obs, rews, rng)
    assert path.shape == (50, 5)
    assert np.allclose(pomdp.R[path[:, :-1], acts], rews)  # the latent states explain the observed rewards


def test_ops_pomdp_regret_decreases_on_tiger() -> None:
    regret = run_pomdp(T=120, H=3, seed=0)
    assert regret.min() >= -1e-12
    quarter = len(regret) // 4
    assert regret[-quarter:].mean() < 0.5 * regret[:quarter].mean()
