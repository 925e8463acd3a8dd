"""The CLI builder, exercised through the tiny example package in tests/fixtures/example_pkg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from paperlab_core import cli as pcli
from paperlab_core.errors import UsageError


@pytest.fixture
def example(example_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    from example_pkg import cli

    return cli.main


def _runs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "runs" / "example_pkg"
    return sorted(folder.iterdir()) if folder.exists() else []


QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


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
    with pytest.raises(UsageError, match="neither a file nor a preset.*default, fast"):
        pcli.expand_config_args(["--config", "nope"], "example_pkg")
    renamed = pcli.expand_config_args(
        ["--finetuned=a.ckpt"], "example_pkg", renames={"--finetuned": "--model.x"}
    )
    assert renamed[-1] == "--model.x=a.ckpt"
    assert pcli.list_presets("example_pkg") == ["default", "fast"]


def test_flag_helpers() -> None:
    args = ["--a", "1", "--b=2", "--a=3"]
    assert pcli.flag_value(args, "--a") == "3" and pcli.flag_value(args, "--c") is None
    assert pcli.drop_flag(args, "--a") == ["--b=2"]


def test_help_version_and_unknown_command(example: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert example(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: example-pkg <command>" in out
    for verb in ("train", "evaluate", "predict", "hello", "reproduce"):
        assert f"  {verb}" in out
    assert example(["--version"]) == 0
    assert capsys.readouterr().out.startswith("example-pkg 0.0.1 (paperlab-core ")
    assert example(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'frobnicate'" in err


def test_train_writes_run_dir_then_evaluate_and_predict_restore_the_config(
    example: Any, tmp_path: Path
) -> None:
    args = ["train", "--run_name", "first", "--model.dim", "3", "--data.dim", "3", *QUIET]
    assert example(args) == 0
    (run,) = _runs(tmp_path)
    assert run.name.endswith("-first")
    for name in ("config.yaml", "metrics.json", "metrics.csv", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    assert (run / "metrics.json").stat().st_mode & 0o777 == 0o644
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["package"] == "example_pkg" and metrics["fit"]["global_step"] == 16
    assert metrics["fit"]["val/mse"] < 2.0 and metrics["env"]["precision"] == "32-true"
    assert 0 < metrics["fit"]["wall_s"] < 600  # seconds the fit took
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_epochs"] == 2
    ckpt = run / "checkpoints" / "last.ckpt"
    stored = torch.load(ckpt, weights_only=False)["paperlab"]
    assert stored["config"]["model"]["dim"] == 3 and stored["model_class"] == "example_pkg.model:Regressor"

    # no other flag: dim=3 comes from the checkpoint (the default preset says 4 and would not load)
    assert example(["evaluate", "--ckpt", str(ckpt), *QUIET]) == 0
    (evaluation,) = set(_runs(tmp_path)) - {run}
    evaluated = json.loads((evaluation / "metrics.json").read_text())
    assert evaluated["test"]["test/mse"] == pytest.approx(metrics["fit"]["val/mse"], rel=1e-5)

    assert example(["predict", f"--ckpt={ckpt}", *QUIET]) == 0
    (prediction,) = set(_runs(tmp_path)) - {run, evaluation}
    predictions = torch.load(prediction / "predictions.pt")
    assert torch.cat(predictions).shape == (256,)


def test_evaluate_warns_when_the_data_differs(
    example: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert example(["train", "--trainer.fast_dev_run=true", *QUIET]) == 0
    ckpt = _runs(tmp_path)[0] / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()  # fast_dev_run still leaves a checkpoint to evaluate
    capsys.readouterr()
    assert example(["evaluate", "--ckpt", str(ckpt), *QUIET]) == 0
    assert "data differs" not in capsys.readouterr().err
    assert example(["evaluate", "--ckpt", str(ckpt), "--data.num_samples", "64", *QUIET]) == 0
    assert "the data differs from the data this checkpoint was trained on" in capsys.readouterr().err


def test_user_errors_leave_no_run_folder(example: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = {
        ("evaluate",): "--ckpt PATH is required",
        ("evaluate", "--ckpt", "missing.ckpt"): "checkpoint missing.ckpt does not exist",
        ("train", "--data.root", "nowhere"): "data root nowhere does not exist",
        ("train", "--model.lr", "abc"): 'Parser key "model.lr": Expected a float. Got value: abc',
        ("train", "--resume", "nowhere"): "run folder nowhere does not exist",
        ("train", "--ckpt_path", "last"): "nothing to resume yet",
        ("hello", "--name", "nobody"): "--name nobody: expected somebody",
    }
    for args, message in cases.items():
        assert example(list(args)) in (1, 2), args
        err = capsys.readouterr().err.splitlines()
        assert len(err) <= 2 and message in err[-1], (args, err)  # the environment line, then the error
        assert err[-1].startswith("example-pkg: error: ")
    assert _runs(tmp_path) == []


def test_debug_shows_the_traceback(example: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert example(["hello", "--name", "nobody", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err
    os.environ.pop("PAPERLAB_DEBUG", None)


def test_resume_continues_in_the_same_folder(example: Any, tmp_path: Path) -> None:
    assert example(["train", "--trainer.max_epochs=1", "--run_name", "r", *QUIET]) == 0
    (run,) = _runs(tmp_path)
    assert example(["train", "--resume", str(run), "--trainer.max_epochs=2", *QUIET]) == 0
    assert _runs(tmp_path) == [run]
    assert json.loads((run / "metrics.json").read_text())["fit"]["global_step"] == 16
    assert (run / "metrics.before-resume-1.csv").is_file()
    assert example(["train", "--ckpt_path", "last", "--trainer.max_epochs=3", *QUIET]) == 0
    assert _runs(tmp_path) == [run]
    assert json.loads((run / "metrics.json").read_text())["fit"]["global_step"] == 24


def test_preset_overrides_default_and_cli_overrides_preset(example: Any, tmp_path: Path) -> None:
    assert example(["train", "--config", "fast", "--model.lr", "0.01", *QUIET]) == 0
    (run,) = _runs(tmp_path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["trainer"]["max_epochs"] == 1 and config["model"]["lr"] == 0.01
    assert config["data"]["num_samples"] == 256  # from default.yaml


def test_package_verb_writes_its_run_folder(example: Any, tmp_path: Path) -> None:
    assert example(["hello", "--out", str(tmp_path / "out")]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["hello"] == "world" and metrics["verb"] == "hello"
    assert metrics["command"] == f"example-pkg hello --out {tmp_path / 'out'}"
    assert metrics["env"]["precision"] == "numpy"
    assert yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["name"] == "world"


def test_reproduce_shards_and_merge_through_the_cli(example: Any, tmp_path: Path) -> None:
    for k in (1, 2):
        assert example(["reproduce", "--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}")]) == 0
        assert not (tmp_path / f"s{k}" / "results.json").exists()
    assert example(["reproduce", "--merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", "m"]) == 0
    assert example(["reproduce", "--out", "full"]) == 0
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    assert merged["tables"] == full["tables"] and len(full["records"]) == 6
    assert full["command"] == "example-pkg reproduce --out full" and full["seeds"] == [0, 1, 2]
    # a results file is a merge source too (extending a committed record)
    assert example(["reproduce", "--merge", str(tmp_path / "m" / "results.json"), "--out", "again"]) == 0
    assert json.loads((tmp_path / "again" / "results.json").read_text())["tables"] == full["tables"]


def test_atomic_checkpoint_io_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from paperlab_core.lightning import AtomicCheckpointIO

    io = AtomicCheckpointIO()
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
    """A 2-process gloo DDP fit through paperlab_core.cli works without a GPU and shares one run folder."""
    runs = tmp_path / "runs"
    env = {**os.environ, "PAPERLAB_RUNS": str(runs), "PAPERLAB_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "paperlab_core.offline", "example_pkg.cli:main", "--", "train",
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


def test_max_devices_caps_auto_and_rejects_more(example_src: Path, tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from paperlab_core.errors import ConfigError
    from paperlab_core.lightning import PaperCLI

    class Config(dict):
        def get(self, key, default=None):  # jsonargparse-style dotted get
            return super().get(key, default)

    cli = PaperCLI.__new__(PaperCLI)
    cli.spec = SimpleNamespace(max_devices=1, prog="demo")
    for value, expected in (("auto", 1), (-1, 1), (1, 1)):
        config = Config({"trainer.devices": value})
        config.trainer = SimpleNamespace(devices=value)
        cli._cap_devices(config)
        assert config.trainer.devices == expected
    for value in (2, "0,1", [0, 1]):
        config = Config({"trainer.devices": value})
        config.trainer = SimpleNamespace(devices=value)
        with pytest.raises(ConfigError, match="at most 1 device"):
            cli._cap_devices(config)


def test_unknown_flag_is_rejected_before_lightning_is_imported(example_src: Path, tmp_path: Path) -> None:
    """A typo in a Lightning verb's flags is one line in milliseconds: no Lightning import, no run folder."""
    code = (
        "import sys; from example_pkg import cli; rc = cli.main(['train', '--out', 'x', '--trainer.max_epochs=1']);"
        "print(rc, 'lightning' in sys.modules or 'lightning.pytorch' in sys.modules)"
    )
    env = {**os.environ, "PAPERLAB_RUNS": str(tmp_path / "runs")}  # example_src put itself on PYTHONPATH
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.stdout.split() == ["2", "False"], proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("example-pkg: error: unrecognized argument --out (expected --config")
    assert not (tmp_path / "runs").exists()


def test_known_flag_names_pass_the_precheck() -> None:
    from paperlab_core.cli import LightningVerb
    from paperlab_core.lightning_verbs import check_flag_names

    spec = pcli.PackageSpec("p", "p", "0", "", "m:M", None, (), {}, 0, None, None, ("extra",))
    fit, test = LightningVerb("train", ""), LightningVerb("evaluate", "", stages=("test",))
    ok = ["--config", "c.yaml", "--trainer.max_epochs=1", "--model.lr", "0.1", "--data", "D", "--extra.x=1",
          "--print_config", "--seed_everything=3", "--ckpt_path", "last", "--run_name=a", "--threads", "1",
          "--trainer.callbacks+=X", "-h", "--resume", "r"]  # fmt: skip
    check_flag_names(ok, spec, fit)
    with pytest.raises(UsageError, match="unrecognized argument --resume"):
        check_flag_names(["--resume", "r"], spec, test)  # only verbs that train resume
    with pytest.raises(UsageError, match="unrecognized argument --epochs"):
        check_flag_names(["--epochs=3"], spec, fit)
