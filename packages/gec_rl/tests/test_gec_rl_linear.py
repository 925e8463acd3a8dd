"""Criterion 13: LMC samples of θ_h (one-hot features, fixed θ_{h+1}) match the exact Gaussian conditional."""

from __future__ import annotations

import numpy as np
import pytest
from gec_rl.agents import make_agent
from gec_rl.agents.linear import random_features
from gec_rl.envs import make_env
from gec_rl.posterior_check import check_lmc
from gec_rl.regret import run_agent, task_for


def test_lmc_matches_exact_gaussian_conditional() -> None:
    result = check_lmc()
    assert result["ridge_mean_matches"]
    assert result["max_abs_mean_z"] <= 3.0
    assert result["cov_rel_frobenius_error"] <= 0.1


def test_ops_linear_lmc_runs_with_both_feature_maps() -> None:
    mdp = make_env("riverswim", horizon=10)
    for spec in ("ops_linear_lmc", "ops_linear_lmc:features=random:d=8"):
        agent = make_agent(spec, task_for(mdp, 10, 15), np.random.default_rng(0))
        res = run_agent(mdp, agent, 15, 10, seed=0)
        assert res.inst_regret.min() >= -1e-12
    assert np.allclose(np.linalg.norm(random_features(4, 2, 3), axis=-1), 1.0)
    with pytest.raises(ValueError, match="features"):
        make_agent("ops_linear_lmc:features=rbf", task_for(mdp, 10, 15), np.random.default_rng(0))


def test_one_hot_fast_path_equals_dense_normal_equations() -> None:
    mdp = make_env("riverswim", horizon=5)
    agent = make_agent("ops_linear_lmc", task_for(mdp, 5, 10), np.random.default_rng(0))
    run_agent(mdp, agent, 10, 5, seed=0)
    theta_next = agent.theta[3]
    diag, b_fast = agent.layer_system(2, theta_next)
    agent.one_hot = False
    dense, b_dense = agent.layer_system(2, theta_next)
    assert np.allclose(dense.numpy(), np.diag(diag.numpy()), atol=1e-12)
    assert np.allclose(b_fast.numpy(), b_dense.numpy(), atol=1e-12)
