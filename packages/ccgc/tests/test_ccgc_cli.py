"""CLI: train on a saved PyG Data file, evaluate its checkpoint, presets and package verbs (spec §6 item 13)."""

from __future__ import annotations

import json

import torch


def test_train_then_evaluate_on_pyg_file(tmp_path, monkeypatch):
    """In-process (a fresh process per verb costs a minute of imports on a loaded 2-core machine)."""
    from ccgc.cli import main
    from torch_geometric.datasets import KarateClub

    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))

    torch.save(KarateClub()[0], tmp_path / "karate.pt")
    common = ["--data.dataset", "pyg", "--data.path", str(tmp_path / "karate.pt"), "--data.t", "2"]
    main(
        [
            "train",
            *common,
            "--model.dims",
            "16",
            "--model.lr",
            "1e-3",
            "--model.warmup_epochs",
            "5",
            "--model.legacy",
            "true",
            "--trainer.max_epochs",
            "12",
            "--run_name",
            "karate",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    (run_dir,) = (tmp_path / "runs" / "ccgc").glob("*-karate")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"best", "best_trained", "last"} <= set(metrics)
    assert metrics["best"]["acc"] >= metrics["best_trained"]["acc"]
    assert metrics["last"]["epoch"] == 11
    assert [c["epoch"] for c in metrics["candidates"]] == [-1, 0, 10]
    assert (run_dir / "embedding_pca.png").stat().st_size > 1000
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    main(
        [
            "evaluate",
            *common,
            "--model.dims",
            "16",
            "--ckpt",
            str(ckpt),
            "--run_name",
            "eval",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    (eval_dir,) = (tmp_path / "runs" / "ccgc").glob("*-eval")
    test_metrics = json.loads((eval_dir / "metrics.json").read_text())["test"]
    assert 0 <= test_metrics["test/acc"] <= 100 and "test/nmi" in test_metrics


def test_presets_and_commands_in_process(capsys):
    from ccgc.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("reproduce", "baselines", "datasets", "benchmark", "trace"):
        assert verb in out
    assert "paper_legacy" in out
    assert main(["datasets"]) == 0
    assert "cora" in capsys.readouterr().out


def test_trace_prints_collapse_diagnostics(capsys):
    from ccgc.trace import trace_main

    assert trace_main(["--dataset", "karate", "--epochs", "62", "--variant", "fixed_sum"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["epoch", "phase", "loss"]
    rows = [line.split() for line in lines[2:-1]]
    assert [int(r[0]) for r in rows] == [0, 10, 20, 30, 40, 50, 60, 61]
    assert rows[-2][1] == "contrastive" and float(rows[-2][5]) >= 0  # ACC of the epoch-60 re-clustering
    assert all(0 <= float(r[7]) <= 1 for r in rows)  # ‖mean E‖ of unit-norm views lies in [0, 1]
    assert lines[-1].startswith("best ACC")
