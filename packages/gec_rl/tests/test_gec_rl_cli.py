"""Criterion 19: the CLI contract (help, version, train fast_dev_run, print_config round trip, evaluate).

The verbs run in-process (``main(argv)``) to keep the suite fast; one subprocess run under the offline guard is
marked ``slow`` (the lead's contract tests run the console script too).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gec_rl.cli import main


def _print_config(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as info:
        main(["train", *args, "--print_config"])
    assert info.value.code in (0, None)
    return capsys.readouterr().out


def test_help_and_version(capsys) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "regret" in out and "reproduce" in out
    assert main(["--version"]) == 0
    assert "gec-rl 0.1.0" in capsys.readouterr().out


def test_print_config_round_trip(capsys, tmp_path: Path) -> None:
    config = _print_config(capsys)
    assert "agent: ops_mb" in config and "env: frozenlake" in config
    path = tmp_path / "cfg.yaml"
    path.write_text(config)
    assert _print_config(capsys, "--config", str(path)) == config
    paper = _print_config(capsys, "--config", "paper")
    assert "eta: 0.5" in paper and "gamma_schedule: constant" in paper


def test_train_writes_regret_and_evaluate_loads_agent(tmp_path: Path, monkeypatch) -> None:
    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLAB_RUNS", str(runs))
    assert (
        main(
            [
                "train",
                "--data.env",
                "riverswim",
                "--data.episodes",
                "30",
                "--run_name",
                "t",
                "--trainer.enable_progress_bar=false",
            ]
        )
        == 0
    )
    (run_dir,) = (runs / "gec_rl").glob("*-t")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["regret"]["episodes"] == 30 and metrics["regret"]["v_star"] > 3.39
    assert len((run_dir / "regret.csv").read_text().splitlines()) == 31
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert (
        main(
            [
                "evaluate",
                "--ckpt",
                str(ckpt),
                "--data.env",
                "riverswim",
                "--run_name",
                "e",
                "--trainer.enable_progress_bar=false",
            ]
        )
        == 0
    )
    (eval_dir,) = (runs / "gec_rl").glob("*-e")
    test = json.loads((eval_dir / "metrics.json").read_text())["test"]
    assert test["test/gap"] >= -1e-6 and test["test/v_star"] > 3.39


def test_fast_dev_run_and_bad_agent() -> None:
    assert main(["train", "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false"]) == 0
    with pytest.raises(ValueError, match="magic"):
        main(["train", "--model.agent", "magic", "--trainer.fast_dev_run=true"])


@pytest.mark.slow
def test_console_script_offline(cli_runner) -> None:
    cli_runner("gec_rl.cli:main", "train", "--trainer.fast_dev_run=true")
