"""MAE pre-training as a Lightning run: resume from the run folder, DDP (2 CPU processes), precision flags, and the
builtin teacher built once by rank 0 while the other ranks wait."""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch
from tinymim.cli import main

from paperlab_core.errors import UserError


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


#: digits32: 1,297 training images, batch 128, drop_last → 10 optimiser steps per epoch
STEPS_PER_EPOCH = 10


def test_pretrain_teacher_resumes_from_its_run_folder(isolated_cache, tmp_path):
    """An interrupted run (stopped after epoch 1 of 2) continues with `--resume RUN_DIR`: the stored recipe, the
    optimiser step count and the epoch-1 loss come back from checkpoints/last.ckpt, epoch 2 is trained."""
    out = tmp_path / "pre"
    base = ["pretrain-teacher", "--data.dataset", "digits32", "--epochs", "2", "--device", "cpu"]
    assert main([*base, "--max-steps", str(STEPS_PER_EPOCH), "--out", str(out)]) == 0
    first = json.loads((out / "teacher.json").read_text())
    assert first["steps"] == STEPS_PER_EPOCH and len(first["epoch_losses"]) == 1
    assert (out / "checkpoints" / "last.ckpt").is_file()
    stored = json.loads((out / "teacher-recipe.json").read_text())
    assert stored["epochs"] == 2 and stored["dataset"] == "digits32"

    # the resumed run ignores command-line recipe overrides: the folder's recipe is the run's
    assert main(["pretrain-teacher", "--resume", str(out), "--epochs", "7"]) == 0
    resumed = json.loads((out / "teacher.json").read_text())
    assert resumed["steps"] == 2 * STEPS_PER_EPOCH and resumed["config"]["epochs"] == 2
    assert resumed["epoch_losses"][0] == pytest.approx(first["epoch_losses"][0], rel=0, abs=0)
    assert len(resumed["epoch_losses"]) == 2 and resumed["epoch_losses"][1] < resumed["epoch_losses"][0]
    blob = torch.load(out / "teacher.pth", weights_only=False)
    assert blob["meta"]["pretrain"]["steps"] == 2 * STEPS_PER_EPOCH


def test_resume_needs_a_pretrain_folder_and_agrees_with_out(tmp_path, capsys):
    assert main(["pretrain-teacher", "--resume", str(tmp_path)]) == 1
    assert "no recipe teacher-recipe.json" in capsys.readouterr().err
    assert main(["pretrain-teacher", "--resume", str(tmp_path), "--out", str(tmp_path / "other")]) == 2
    assert "--resume RUN_DIR continues in RUN_DIR" in capsys.readouterr().err


def test_print_config_prints_the_recipe_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["pretrain-teacher", "--config", "mae-vit-small", "--print_config", "--out", str(out)]) == 0
    recipe = json.loads(capsys.readouterr().out)
    assert recipe["arch"] == "mae_vit_small" and recipe["epochs"] == 800 and recipe["warmup_epochs"] == 40
    assert not (out / "teacher.pth").exists()


def test_mae_module_follows_the_recipe_schedule_and_groups():
    """The LightningModule's optimiser: AdamW(0.9, 0.95), no decay on 1-D/bias parameters, lr = warm-up then
    half-cosine per iteration (independent computation of the schedule)."""
    import math
    from types import SimpleNamespace

    from tinymim.pretrain import MAEPretrain, PretrainConfig

    recipe = PretrainConfig(dataset="digits32", epochs=4, warmup_epochs=1.0, lr=1e-3)
    module = MAEPretrain(vars(recipe) | {"betas": list(recipe.betas)})
    module._trainer = SimpleNamespace(world_size=1, estimated_stepping_batches=40, max_epochs=4)  # type: ignore[assignment]
    opt = module.configure_optimizers()
    optimizer, scheduler = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    assert optimizer.defaults["betas"] == (0.9, 0.95)
    decays = {p.ndim <= 1: g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decays == {True: 0.0, False: 0.05}
    seen = []
    for _ in range(40):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [
        1e-3 * s / 10 if s < 10 else 1e-3 * 0.5 * (1 + math.cos(math.pi * (s - 10) / 30)) for s in range(40)
    ]
    assert seen == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_builtin_teacher_rank0_builds_while_other_ranks_wait(isolated_cache, monkeypatch, tmp_path):
    """Under DDP only rank 0 pre-trains a missing builtin teacher (single-process, cluster environment ignored);
    another rank waits until the file appears, or fails with one line after the timeout."""
    from tinymim import pretrain

    monkeypatch.setattr(pretrain, "shipped_teacher", lambda preset, config: None)
    calls = []

    def fake_pretrain(config, path, **kwargs):
        calls.append(kwargs)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"teacher")
        return {"epoch_losses": [1.0]}

    monkeypatch.setattr(pretrain, "pretrain_mae", fake_pretrain)
    monkeypatch.setattr(pretrain, "distributed_rank", lambda: (1, 2))
    monkeypatch.setenv(pretrain.WAIT_ENV, "0.3")
    with pytest.raises(UserError, match="waited 0 s for rank 0 to write the builtin teacher"):
        pretrain.builtin_teacher_path()
    assert calls == []

    monkeypatch.setenv(pretrain.WAIT_ENV, "60")
    expected = pretrain.builtin_cache_path("mae-teacher-default", pretrain.load_preset("mae-teacher-default"))
    writer = threading.Timer(0.5, lambda: fake_pretrain(None, expected))
    writer.start()
    started = time.monotonic()
    assert pretrain.builtin_teacher_path() == expected
    assert time.monotonic() - started >= 0.4 and len(calls) == 1 and calls[0] == {}  # the timer's write
    expected.unlink()
    calls.clear()

    monkeypatch.setattr(pretrain, "distributed_rank", lambda: (0, 2))
    assert pretrain.builtin_teacher_path() == expected
    assert calls == [{"nested": True}]


def test_distributed_rank_reads_the_launcher_environment(monkeypatch):
    from tinymim.pretrain import distributed_rank

    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    assert distributed_rank() == (0, 1)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_rank() == (1, 4)
    monkeypatch.setenv("RANK", "3")
    assert distributed_rank() == (3, 4)


@pytest.mark.slow
@pytest.mark.ddp
def test_pretrain_teacher_two_cpu_processes_ddp(cli_runner, tmp_path):
    """`pretrain-teacher --devices 2 --strategy ddp` on CPU (gloo), 3 steps: both ranks share one run folder, the
    world size is 2, rank 0 alone writes the teacher and the Lightning checkpoint."""
    runs = tmp_path / "runs"
    cli_runner(
        "tinymim.cli:main", "pretrain-teacher", "--data.dataset", "digits32", "--epochs", "1", "--max-steps", "3",
        "--devices", "2", "--strategy", "ddp", "--device", "cpu",
        env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "PAPERLAB_RUNS": str(runs)},
    )  # fmt: skip
    (run,) = sorted((runs / "tinymim").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 3
    assert (run / "teacher.pth").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    blob = torch.load(run / "teacher.pth", weights_only=False)
    assert blob["meta"]["block_heads"] == [4] * 6
