"""Criterion 11 (model-free OPS): both samplers against a self-normalised importance-sampling reference."""

from __future__ import annotations

import numpy as np
import pytest
from gec_rl.agents import make_agent
from gec_rl.envs import make_env
from gec_rl.posterior_check import check_ops_mf
from gec_rl.regret import run_agent, task_for


@pytest.mark.parametrize("sampler", ["conditional", "gibbs"])
def test_sampler_matches_importance_sampling_reference(sampler: str) -> None:
    result = check_ops_mf(sampler)
    assert result["reference_ess"] >= 1e4
    assert result["tv_policies"] <= 0.05
    assert result["abs_diff_value"] <= 0.03
    # power: the optimism term moves E[V_1] by far more than the tolerance
    assert result["optimism_shift_of_value"] >= 0.1


def test_ops_mf_runs_and_rejects_bad_options() -> None:
    mdp = make_env("riverswim", horizon=10)
    for spec in ("ops_mf", "ops_mf:sampler=gibbs", "ops_mf:sampler=langevin:langevin_steps=5"):
        res = run_agent(
            mdp, make_agent(spec, task_for(mdp, 10, 20), np.random.default_rng(0)), 20, 10, seed=0
        )
        assert res.inst_regret.min() >= -1e-12
    with pytest.raises(ValueError, match="sampler"):
        make_agent("ops_mf:sampler=hmc", task_for(mdp, 10, 20), np.random.default_rng(0))


@pytest.mark.slow
def test_langevin_mala_matches_importance_sampling_reference() -> None:
    result = check_ops_mf("langevin", step_scale=0.02)
    assert result["tv_policies"] <= 0.05
    assert result["abs_diff_value"] <= 0.03
