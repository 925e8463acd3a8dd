"""Behavioural criteria 8–11, 13–15 (slow: minutes of CPU). Run with ``-m slow``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gec_rl.cli import main
from gec_rl.regret import run_job, summarise
from gec_rl.reproduce import behaviour_checks
from gec_rl.study import DEFAULT_AGENTS, DEFAULT_ENVS, run_study, summary_rows

pytestmark = pytest.mark.slow


def test_default_study_meets_behavioural_criteria() -> None:
    results = run_study(list(DEFAULT_ENVS), list(DEFAULT_AGENTS), [0, 1, 2], 2000, 20, workers=2)
    checks = behaviour_checks(summary_rows(results))
    assert len(checks) == 14
    failed = [c for c in checks if not c["pass"]]
    assert not failed, failed


@pytest.mark.parametrize("agent", ["ops_mf", "ops_linear_lmc"])
def test_model_free_and_linear_ops_sublinear_on_riverswim(agent: str) -> None:
    cum = np.cumsum(run_job("riverswim", agent, 0, 2000, 20).inst_regret)
    assert summarise(cum)["slope"] <= 0.7


def test_reproduce_quick(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    assert main(["reproduce", "--quick", "--out", str(tmp_path / "q")]) == 0
    results = json.loads((tmp_path / "q" / "results.json").read_text())
    assert (tmp_path / "q" / "results.md").is_file() and (tmp_path / "q" / "regret_frozenlake.png").is_file()
    assert len(results["tables"]["checks"]["rows"]) == 19  # 2 envs × 7 + 4 model-free agents + Tiger
