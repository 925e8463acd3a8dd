"""Criterion 19: the CLI (help, version, train, print_config round trip, evaluate with only --ckpt, package verbs,
one-line errors, numpy verbs without torch, the literal choices of cli.py against the registries).

Most verbs run in-process (``main(argv)``) to keep the suite fast; the checks that need a fresh interpreter (no
torch imported, the console script offline) run in a subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import gec_rl
import numpy as np
import pytest
from gec_rl import cli
from gec_rl.cli import main


def _print_config(capsys, *args: str) -> str:
    assert main(["train", *args, "--print_config"]) == 0
    return capsys.readouterr().out


def test_help_and_version(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in (
        "train",
        "evaluate",
        "regret",
        "decompose",
        "sir-bias",
        "reproduce",
        "envs",
        "solve",
        "bench",
        "posterior-check",
    ):
        assert f"  {verb} " in out, verb
    assert "  validate " not in out and "  predict " not in out  # RegretModule has neither step
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"gec-rl {gec_rl.__version__} ")


def test_literal_choices_equal_the_registries() -> None:
    from gec_rl.agents import AGENT_NAMES, REGISTRY
    from gec_rl.envs import ENV_NAMES
    from gec_rl.study import DEFAULT_AGENTS, DEFAULT_ENVS

    assert cli.ENV_NAMES == ENV_NAMES
    assert cli.AGENT_NAMES == AGENT_NAMES == tuple(REGISTRY)
    assert cli.DEFAULT_ENVS == DEFAULT_ENVS and cli.DEFAULT_AGENTS == DEFAULT_AGENTS


def test_print_config_round_trip(capsys, tmp_path: Path) -> None:
    config = _print_config(capsys)
    assert "agent: ops_mb" in config and "env: frozenlake" in config
    path = tmp_path / "cfg.yaml"
    path.write_text(config)
    assert _print_config(capsys, "--config", str(path)) == config
    paper = _print_config(capsys, "--config", "paper")
    assert "eta: 0.5" in paper and "gamma_schedule: constant" in paper


def test_train_writes_regret_and_evaluate_needs_only_the_checkpoint(tmp_path: Path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLAB_RUNS", str(runs))
    args = ["--data.env", "riverswim", "--data.episodes", "30", "--run_name", "t"]
    assert main(["train", *args, "--trainer.enable_progress_bar=false"]) == 0
    (run_dir,) = (runs / "gec_rl").glob("*-t")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["regret"]["episodes"] == 30 and metrics["regret"]["v_star"] > 3.39
    assert len((run_dir / "regret.csv").read_text().splitlines()) == 31
    # one episode function (gec_rl.regret.run_episode) serves train and the regret study: same seed, same regret
    from gec_rl.regret import run_job

    rows = list(csv.DictReader((run_dir / "regret.csv").open()))
    study = run_job("riverswim", "ops_mb", 0, 30, 20)
    np.testing.assert_array_equal([float(r["inst_regret"]) for r in rows], study.inst_regret)
    np.testing.assert_array_equal([float(r["v_f"]) for r in rows], study.model_value)
    np.testing.assert_array_equal([float(r["train_error"]) for r in rows], study.train_error)
    assert metrics["regret"]["regret"] == pytest.approx(study.inst_regret.sum(), abs=1e-9)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    # no --data.env: the checkpoint's configuration (riverswim, V* = 3.397) must be restored
    assert (
        main(["evaluate", "--ckpt", str(ckpt), "--run_name", "e", "--trainer.enable_progress_bar=false"]) == 0
    )
    (eval_dir,) = (runs / "gec_rl").glob("*-e")
    test = json.loads((eval_dir / "metrics.json").read_text())["test"]
    assert test["test/gap"] >= -1e-6 and test["test/v_star"] == pytest.approx(metrics["regret"]["v_star"])


def test_fast_dev_run_and_bad_agent(capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    assert main(["train", "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false"]) == 0
    capsys.readouterr()
    assert main(["train", "--model.agent", "magic", "--trainer.fast_dev_run=true"]) == 1
    err = [
        line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("env: ")
    ]
    assert len(err) == 1 and err[0].startswith("gec-rl: error: model.agent 'magic'"), err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["regret", "--envs", "Nope"], "unknown env 'Nope'"),
        (["regret", "--envs", "Nope-v0"], "unknown gymnasium env id 'Nope-v0'"),
        (["regret", "--envs", "Blackjack-v1"], "exact model P"),
        (["regret", "--agents", "magic"], "unknown agent 'magic'"),
        (["regret", "--agents", "ops_mb:eta=0"], "eta"),
        (["regret", "--seeds", "a,b"], "--seeds"),
        (["regret", "--T", "10"], "unrecognized arguments: --T"),
        (["regret", "--data.episodes", "3"], "--data.episodes must be >= 4"),
        (["solve", "--data.env", "Nope"], "unknown env 'Nope'"),
        (["train", "--data.env", "Nope", "--trainer.fast_dev_run=true"], "unknown env 'Nope'"),
        (["bench", "nope"], "unknown gec-rl bench command 'nope'"),
    ],
)
def test_user_errors_are_one_line(
    argv: list[str], expected: str, capsys, tmp_path: Path, monkeypatch
) -> None:
    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLAB_RUNS", str(runs))
    status = main(argv)
    err = [
        line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("env: ")
    ]
    assert status != 0
    assert len(err) == 1 and err[0].startswith("gec-rl: error: ") and expected in err[0], err
    assert not any(path.is_file() for path in runs.rglob("*")), "a failed verb left files behind"


def test_numpy_verbs_do_not_import_torch(tmp_path: Path) -> None:
    """`regret`, `envs`, `solve` and `bench plan` run without importing torch or Lightning (issue #14)."""
    probe = (
        "import sys\n"
        "from gec_rl.cli import main\n"
        "out = sys.argv[1]\n"
        "assert main(['regret', '--envs', 'riverswim', '--agents', 'psrl,ucbvi', '--seeds', '0',\n"
        "             '--data.episodes', '8', '--data.horizon', '5', '--workers', '1', '--out', out + '/r']) == 0\n"
        "assert main(['envs', '--data.horizon', '5']) == 0\n"
        "assert main(['solve', '--data.env', 'riverswim', '--mc', '10']) == 0\n"
        "assert main(['bench', 'plan', '--data.env', 'riverswim', '--count-episodes', '3', '--repeats', '1',\n"
        "             '--out', out + '/b']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'pytorch_lightning', 'lightning_fabric') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PAPERLAB_RUNS": str(tmp_path / "runs"), "PAPERLAB_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| riverswim | 6 | 2 | 5 |" in proc.stdout
    bench = json.loads((tmp_path / "b" / "bench.json").read_text())
    assert bench["greedy_actions_equal_outside_ties"] and bench["max_abs_dV_batched_vs_reference"] < 1e-9
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["env"]["precision"] == "numpy"


def test_solve_prints_v_star(capsys) -> None:
    assert main(["solve", "--data.env", "riverswim", "--data.horizon", "20"]) == 0
    out = capsys.readouterr().out
    solved = json.loads(out[out.index("{") :])
    assert solved["v_star"] == pytest.approx(3.397, abs=1e-3)
    assert solved["v_pi_star_eval"] == pytest.approx(solved["v_star"], abs=1e-12)


@pytest.mark.slow
def test_console_script_offline(cli_runner) -> None:
    cli_runner("gec_rl.cli:main", "train", "--trainer.fast_dev_run=true")
