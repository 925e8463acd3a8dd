"""The CLI builder, exercised through the tiny example package in tests/fixtures/example_pkg."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from paperlab import cli as pcli


@pytest.fixture
def example(example_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    from example_pkg import cli

    return cli.main


def _runs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "runs" / "example_pkg").iterdir())


def test_presets_resolve_and_default_comes_first(example_src: Path, tmp_path: Path) -> None:
    args = pcli.expand_config_args(
        ["--config", "fast", "--model.lr", "0.1", "--ckpt", "x.ckpt"], "example_pkg"
    )
    folder = pcli.preset_dir("example_pkg")
    assert folder is not None
    assert args == [
        "--config", str(folder / "default.yaml"), "--config", str(folder / "fast.yaml"),
        "--model.lr", "0.1", "--ckpt_path", "x.ckpt",
    ]  # fmt: skip
    own = tmp_path / "mine.yaml"
    own.write_text("model:\n  lr: 0.5\n")
    assert pcli.expand_config_args([f"--config={own}"], "example_pkg")[-1] == f"--config={own}"
    with pytest.raises(SystemExit, match="neither a file nor a preset.*default, fast"):
        pcli.expand_config_args(["--config", "nope"], "example_pkg")
    assert pcli.list_presets("example_pkg") == ["default", "fast"]


def test_help_version_and_unknown_command(example: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert example(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: example-pkg <command>" in out
    for verb in ("train", "evaluate", "predict", "hello"):
        assert f"  {verb}" in out
    assert example(["--version"]) == 0
    assert capsys.readouterr().out.startswith("example-pkg 0.0.1 (paperlab ")
    assert example(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_train_writes_run_dir_then_evaluate_and_predict(example: Any, tmp_path: Path) -> None:
    assert example(["train", "--run_name", "first", "--trainer.enable_progress_bar=false"]) == 0
    (run,) = _runs(tmp_path)
    assert run.name.endswith("-first")
    for name in ("config.yaml", "metrics.json", "metrics.csv", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["package"] == "example_pkg" and metrics["fit"]["global_step"] == 16
    assert metrics["fit"]["val/mse"] < 2.0
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_epochs"] == 2

    ckpt = str(run / "checkpoints" / "last.ckpt")
    assert example(["evaluate", "--ckpt", ckpt, "--trainer.enable_progress_bar=false"]) == 0
    evaluated = json.loads((_runs(tmp_path)[-1] / "metrics.json").read_text())
    assert evaluated["test"]["test/mse"] == pytest.approx(metrics["fit"]["val/mse"], rel=1e-5)

    assert example(["predict", f"--ckpt={ckpt}", "--trainer.enable_progress_bar=false"]) == 0
    predictions = torch.load(_runs(tmp_path)[-1] / "predictions.pt")
    assert torch.cat(predictions).shape == (256,)


def test_evaluate_requires_a_checkpoint(example: Any) -> None:
    with pytest.raises(SystemExit, match="--ckpt PATH is required"):
        example(["evaluate"])
    with pytest.raises(SystemExit, match="does not exist"):
        example(["evaluate", "--ckpt", "missing.ckpt"])


def test_preset_overrides_default_and_cli_overrides_preset(example: Any, tmp_path: Path) -> None:
    assert (
        example(["train", "--config", "fast", "--model.lr", "0.01", "--trainer.enable_progress_bar=false"])
        == 0
    )
    config = yaml.safe_load((_runs(tmp_path)[-1] / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 1 and config["model"]["lr"] == 0.01
    assert config["data"]["num_samples"] == 256  # from default.yaml


def test_package_command(example: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert example(["hello", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == {"hello": "world"}


def test_atomic_checkpoint_io_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io = pcli.AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)

    def crash(obj: object, handle: Any) -> None:
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path) == {"step": 1}


@pytest.mark.ddp
def test_two_process_cpu_ddp_fit(example_src: Path, tmp_path: Path) -> None:
    """A 2-process gloo DDP fit through paperlab.cli works without a GPU and shares one run directory."""
    runs = tmp_path / "runs"
    env = {**__import__("os").environ, "PAPERLAB_RUNS": str(runs), "PAPERLAB_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "paperlab.offline", "example_pkg.cli:main", "--", "train",
         "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
         "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--run_name=ddp"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    (run,) = sorted((runs / "example_pkg").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    # 256 samples split over two ranks with batch 32: 4 optimiser steps per epoch on each rank
    assert metrics["fit"]["global_step"] == 4
    assert (run / "checkpoints" / "last.ckpt").exists()
