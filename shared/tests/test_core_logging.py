from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from paperlab_core import logging as plog


def test_run_dir_layout_and_collisions(tmp_path: Path) -> None:
    first = plog.make_run_dir("demo", "my run!", root=tmp_path)
    second = plog.make_run_dir("demo", "my run!", root=tmp_path)
    assert first.parent == tmp_path / "demo"
    assert re.fullmatch(r"\d{8}-\d{6}-my-run", first.name)
    assert first != second and second.is_dir()


def test_runs_root_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "elsewhere"))
    assert plog.runs_root() == tmp_path / "elsewhere"
    assert plog.runs_root("explicit") == Path("explicit")


def test_write_metrics_merges_and_serialises_tensors(tmp_path: Path) -> None:
    plog.write_metrics(tmp_path, {"acc": torch.tensor(0.5), "curve": torch.arange(3)})
    plog.write_metrics(tmp_path, {"loss": 1.25, "bad": float("nan")})
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data == {"acc": 0.5, "curve": [0, 1, 2], "loss": 1.25, "bad": "nan"}


def test_exception_mid_write_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    plog.write_json_atomic(path, {"version": 1})
    with pytest.raises(RuntimeError, match="boom"), plog.atomic_open(path, "w") as handle:
        handle.write('{"version": 2, "trunc')
        raise RuntimeError("boom")
    assert json.loads(path.read_text()) == {"version": 1}
    assert list(tmp_path.iterdir()) == [path]  # the temporary file was removed


def test_killed_writer_leaves_previous_file_intact(tmp_path: Path) -> None:
    """A process killed (SIGKILL-like, no cleanup) half-way through a write never corrupts metrics.json."""
    path = tmp_path / "metrics.json"
    plog.write_metrics(tmp_path, {"epoch": 1, "acc": 0.25})
    script = textwrap.dedent(
        f"""
        import os
        from paperlab_core.logging import atomic_open
        with atomic_open({str(path)!r}, "w") as handle:
            handle.write('{{"epoch": 2, "acc": 0.')
            handle.flush()
            os._exit(9)  # dies mid-write: no exception handling, no rename
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    assert json.loads(path.read_text()) == {"epoch": 1, "acc": 0.25}


def test_save_torch_atomic_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.ckpt"
    plog.save_torch_atomic({"w": torch.ones(2)}, path)

    def failing_save(obj: object, handle: object) -> None:
        handle.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        plog.save_torch_atomic({"w": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path)["w"], torch.ones(2))


def test_build_loggers_write_into_run_dir(tmp_path: Path) -> None:
    loggers = plog.build_loggers(tmp_path)
    assert Path(loggers[0].log_dir) == tmp_path
    loggers[0].log_metrics({"x": 1.0}, step=0)
    loggers[0].save()
    assert (tmp_path / "metrics.csv").exists()


def test_track_yields_everything_without_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(plog.track(range(5), "counting")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""  # quicker than every_s: no line


def test_track_logs_progress_with_an_eta_without_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    clock = iter(float(t) for t in range(0, 100, 10))  # start, then one tick of 10 s per item
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    assert list(plog.track(range(4), "epochs", every_s=15)) == [0, 1, 2, 3]
    lines = capsys.readouterr().err.splitlines()
    # items end at 10, 20, 30, 40 s: lines at 20 s (2/4, ETA 20 s) and 40 s (4/4, ETA 0 s)
    assert lines == ["epochs: 2/4 (50%), 20 s, ETA 20 s", "epochs: 4/4 (100%), 40 s, ETA 0 s"]


def test_log_only_on_rank_zero(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    plog.log("hello")
    monkeypatch.setitem(os.environ, "RANK", "1")
    plog.log("hidden")
    assert capsys.readouterr().err == "hello\n"


def test_atomic_files_are_world_readable(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        path = plog.write_json_atomic(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


SLURM = {"SLURM_JOB_ID": "901", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "1"}


def test_slurm_names_are_keyed_by_job_task_step_and_verb() -> None:
    assert plog.slurm_run_name("train", "x", {}) is None
    assert plog.slurm_run_name("train", "x", SLURM) == "slurm-901-0-train-x"
    array = {**SLURM, "SLURM_ARRAY_JOB_ID": "900", "SLURM_ARRAY_TASK_ID": "3"}
    assert plog.slurm_run_name("reproduce", "r", array) == "slurm-900_3-0-reproduce-r"
    assert plog.slurm_run_name("train", "x", {"SLURM_JOB_ID": "901"}) == "slurm-901-batch-train-x"


def test_slurm_runs_never_share_a_folder_unless_they_are_ranks_of_one_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in SLURM.items():
        monkeypatch.setenv(key, value)
    first = plog.make_run_dir("demo", "x", root=tmp_path, verb="train")
    second = plog.make_run_dir("demo", "x", root=tmp_path, verb="train")
    assert first.name == "slurm-901-0-train-x" and second.name == "slurm-901-0-train-x-2"
    monkeypatch.setenv("SLURM_NTASKS", "4")  # four ranks of one DDP run: one folder
    rank_a = plog.make_run_dir("demo", "ddp", root=tmp_path, verb="train")
    rank_b = plog.make_run_dir("demo", "ddp", root=tmp_path, verb="train")
    assert rank_a == rank_b


def test_discard_if_unused_keeps_folders_with_results(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    (empty / "config.yaml").write_text("a: 1\n")
    (empty / "metrics.csv").write_text("")
    assert plog.discard_if_unused(empty) and not empty.exists()
    kept = tmp_path / "kept"
    (kept / "checkpoints").mkdir(parents=True)
    (kept / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert not plog.discard_if_unused(kept) and kept.exists()
    assert not plog.discard_if_unused(None)


def test_discarding_the_only_run_removes_the_empty_package_folder(tmp_path: Path) -> None:
    run = plog.make_run_dir("demo", "x", root=tmp_path / "runs")
    assert plog.discard_if_unused(run)
    assert not (tmp_path / "runs").exists()
    kept = plog.make_run_dir("demo", "kept", root=tmp_path / "runs")
    (kept / "metrics.json").write_text("{}")
    other = plog.make_run_dir("demo", "y", root=tmp_path / "runs")
    assert plog.discard_if_unused(other) and kept.is_dir()
