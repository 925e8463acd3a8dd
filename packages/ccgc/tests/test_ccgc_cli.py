"""CLI: train on a saved PyG file then evaluate its checkpoint alone, package verbs, shards, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

METRICS = ("acc", "nmi", "ari", "f1")
QUIET = ["--trainer.enable_progress_bar", "false"]


def _run_dirs(root: Path, suffix: str) -> list[Path]:
    return sorted((root / "ccgc").glob(f"*-{suffix}"))


def test_train_then_evaluate_and_predict_with_the_checkpoint_alone(tmp_path, monkeypatch):
    """A non-default dataset (a PyG file, t = 2, dims 16): `evaluate --ckpt` and `predict --ckpt` need no
    other flag, because the checkpoint carries the model and data configuration (in-process: a fresh process
    per verb costs a minute of imports on a loaded 2-core machine)."""
    from ccgc.cli import main
    from torch_geometric.datasets import KarateClub

    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLAB_RUNS", str(runs))
    torch.save(KarateClub()[0], tmp_path / "karate.pt")
    quiet = QUIET
    train = [
        "train", "--data.dataset", "pyg", "--data.path", str(tmp_path / "karate.pt"), "--data.t", "2",
        "--model.dims", "16", "--model.lr", "1e-3", "--model.warmup_epochs", "5", "--model.legacy", "true",
        "--trainer.max_epochs", "12", "--run_name", "karate", *quiet,
    ]  # fmt: skip
    assert main(train) == 0
    (run_dir,) = _run_dirs(runs, "karate")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"best", "best_trained", "last"} <= set(metrics)
    assert metrics["best"]["acc"] >= metrics["best_trained"]["acc"]
    assert metrics["last"]["epoch"] == 11
    assert [c["epoch"] for c in metrics["candidates"]] == [-1, 0, 10]
    assert (run_dir / "embedding_pca.png").stat().st_size > 1000
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    stored = torch.load(ckpt, map_location="cpu", weights_only=False)["paperlab"]
    assert stored["config"]["data"]["dataset"] == "pyg" and stored["config"]["model"]["dims"] == 16
    assert stored["data_fingerprint"]

    assert main(["evaluate", "--ckpt", str(ckpt), "--run_name", "eval", *quiet]) == 0
    (eval_dir,) = _run_dirs(runs, "eval")
    test_metrics = json.loads((eval_dir / "metrics.json").read_text())["test"]
    # scored on the 34 karate nodes (not on the embedded default's 800): ACC is a multiple of 100/34
    assert test_metrics["test/acc"] * 34 / 100 == pytest.approx(
        round(test_metrics["test/acc"] * 34 / 100), abs=1e-3
    )
    assert 0 <= test_metrics["test/acc"] <= 100 and "test/nmi" in test_metrics
    # the checkpoint carries the run's generator state: k-means repeats the training run's final clustering
    evaluated = json.loads((eval_dir / "metrics.json").read_text())["evaluate"]
    assert evaluated["training_generator_state"] is True
    assert {m: evaluated[m] for m in METRICS} == {m: metrics["last"][m] for m in METRICS}

    assert main(["predict", "--ckpt", str(ckpt), "--run_name", "pred", *quiet]) == 0
    (pred_dir,) = _run_dirs(runs, "pred")
    (predictions,) = torch.load(pred_dir / "predictions.pt", weights_only=False)
    assert predictions["labels"].shape == (34,) and predictions["embedding"].shape == (34, 16)


def test_train_and_reproduce_share_one_protocol(tmp_path, monkeypatch):
    """`ccgc train` (LightningModule) and `ccgc reproduce` (fast loop) run the same CCGCLoop: for one seed their
    best / best_trained / last are equal to the last bit, and `evaluate --ckpt` alone repeats `last` exactly.
    Embedded default (rpg, variant stable), 70 epochs: 51 warm-up + 19 cluster-guided, re-clustering 0..60."""
    from ccgc.cli import main

    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLAB_RUNS", str(runs))
    train = ["train", "--trainer.max_epochs", "70", "--seed_everything", "1", "--model.plot", "false"]
    assert main([*train, "--run_name", "same", *QUIET]) == 0
    (run_dir,) = _run_dirs(runs, "same")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [c["epoch"] for c in metrics["candidates"]] == [-1, 0, 10, 20, 30, 40, 50, 60]
    out = tmp_path / "rep"
    grid = ["--data.dataset", "rpg", "--methods", "stable", "--seeds", "1", "--epochs", "70"]
    assert main(["reproduce", *grid, "--out", str(out)]) == 0
    (record,) = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    for protocol in ("best", "best_trained", "last"):
        assert record["result"][protocol] == metrics[protocol], protocol

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert main(["evaluate", "--ckpt", str(ckpt), "--run_name", "again", *QUIET]) == 0
    (eval_dir,) = _run_dirs(runs, "again")
    evaluated = json.loads((eval_dir / "metrics.json").read_text())["evaluate"]
    assert {m: evaluated[m] for m in METRICS} == {m: metrics["last"][m] for m in METRICS}


def test_sweep_writes_full_grids(tmp_path, adgc_fixture):
    """`ccgc sweep` on the 6-node ADGC fixture: one record per (t, lr, dims, seed), full grid tables."""
    from ccgc.cli import main

    out = tmp_path / "sweep"
    args = ["sweep", "--data.dataset", "bat", "--data.root", str(adgc_fixture), "--methods", "stable,legacy",
            "--t", "1,2", "--lr", "1e-3", "--dims", "8,D", "--epochs", "3", "--seeds", "0", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert len(list((out / "records").glob("*.json"))) == 2 * 2 * 1 * 2
    tables = json.loads((out / "results.json").read_text())["tables"]
    assert set(tables) >= {"main", "bat_stable", "bat_legacy"}
    grid = tables["bat_legacy"]
    assert [(r[0], r[2]) for r in grid["rows"]] == [(1, "8"), (1, "D=4"), (2, "8"), (2, "D=4")]
    assert all(r[-1] in ("no", "best", "last", "best, last") for r in grid["rows"])
    assert main(["sweep", "--dims", "0,D"]) != 0  # a bad list is a usage error, before any run


def test_help_lists_verbs_and_presets(capsys):
    from ccgc.cli import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in (
        "train",
        "evaluate",
        "predict",
        "reproduce",
        "sweep",
        "baselines",
        "datasets",
        "benchmark",
        "trace",
    ):
        assert f"  {verb} " in out
    assert "validate" not in out  # CCGCModule has no validation_step
    for preset in ("default", "stable", "paper", "legacy"):  # the variants' names everywhere
        assert preset in out
    assert "paper_legacy" not in out
    assert main(["datasets"]) == 0
    assert "cora" in capsys.readouterr().out


def test_cli_choices_equal_the_registries():
    """The CLI's choices come from the light ccgc.names; every name there must be served by the heavy code."""
    from ccgc import cli, data, names, reproduce
    from ccgc.engine import CCGCConfig
    from ccgc.graphs import PLANETOID
    from ccgc.module import CCGCModule

    options = {o.dest: o for o in cli.TRACE.options}
    assert options["variant"].choices == names.VARIANTS == ("stable", "paper", "legacy")
    assert options["variant"].default == "stable"
    assert data.DATASETS == names.DATASETS and PLANETOID is names.PLANETOID
    for variant in names.VARIANTS:
        reproduce.variant_config(variant)  # raises ConfigError for a name the engine does not know
    assert set(reproduce.LABELS) | {"kmeans"} == set(names.METHODS)
    assert set(reproduce.DEFAULT_METHODS) <= set(names.METHODS)
    assert reproduce.variant_config("stable") == CCGCConfig()  # the package default
    assert CCGCConfig().pos_normalization == "pairs" and not CCGCConfig().legacy_accumulate_grads
    assert reproduce.variant_config("paper").pos_normalization == "clusters"
    assert reproduce.variant_config("legacy").legacy_accumulate_grads
    assert CCGCModule().cfg == reproduce.variant_config("stable"), (
        "`ccgc train` and the `stable` (default) variant differ"
    )


def test_presets_name_the_variants():
    """`--config stable|paper|legacy` are the reproduce variants of the same names, on Cora; default = stable."""
    from importlib.resources import files

    import yaml
    from ccgc import reproduce
    from ccgc.module import CCGCModule

    folder = files("ccgc") / "configs"
    default = yaml.safe_load((folder / "default.yaml").read_text())
    assert CCGCModule(**default["model"]).cfg == reproduce.variant_config("stable", 400)
    for variant in ("stable", "paper", "legacy"):
        preset = yaml.safe_load((folder / f"{variant}.yaml").read_text())
        assert preset["data"]["dataset"] == "cora"
        model = CCGCModule(**{**default["model"], **preset["model"]})
        assert model.cfg == reproduce.variant_config(variant, 400), variant


def test_trace_prints_collapse_diagnostics(capsys, tmp_path):
    from ccgc.cli import main

    out_dir = tmp_path / "trace"
    args = [
        "trace",
        "--data.dataset",
        "karate",
        "--epochs",
        "62",
        "--variant",
        "paper",
        "--out",
        str(out_dir),
    ]
    assert main(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("env:")]
    assert lines[1].split()[:3] == ["epoch", "phase", "loss"]
    rows = [line.split() for line in lines[2:] if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 10, 20, 30, 40, 50, 60, 61]
    assert rows[-2][1] == "contrastive" and float(rows[-2][5]) >= 0  # ACC of the epoch-60 re-clustering
    assert all(0 <= float(r[7]) <= 1 for r in rows)  # ‖mean E‖ of unit-norm views lies in [0, 1]
    assert any(line.startswith("best ACC") for line in lines)
    saved = json.loads((out_dir / "trace.json").read_text())
    assert [r["epoch"] for r in saved["rows"]] == [0, 10, 20, 30, 40, 50, 60, 61]


def test_reproduce_shards_and_merge_equal_the_whole_run(tmp_path):
    """A tiny grid (karate, 2 seeds, k-means + two variants, 12 epochs) run whole, as 2 shards + merge."""
    from ccgc.cli import main

    grid = [
        "--data.dataset",
        "karate",
        "--methods",
        "kmeans,paper,legacy",
        "--seeds",
        "0,1",
        "--epochs",
        "12",
    ]
    assert main(["reproduce", *grid, "--out", str(tmp_path / "whole")]) == 0
    for k in (1, 2):
        assert main(["reproduce", *grid, "--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}")]) == 0
        assert not (tmp_path / f"s{k}" / "results.json").exists()  # a shard writes records only
    assert len(list((tmp_path / "s1" / "records").glob("*.json"))) == 3
    merged = ["--merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "merged")]
    assert main(["reproduce", *grid, *merged]) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    again = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert whole["tables"] == again["tables"]
    assert set(whole["tables"]) == {"main", "karate"} and whole["seeds"] == [0, 1]
    rows = {(r[0], r[1]): r for r in whole["tables"]["karate"]["rows"]}
    assert rows[("CCGC legacy", "last")][2] == 2 and rows[("k-means(X̃)", "—")][2] == 2


def test_resume_reruns_cells_whose_graph_file_changed(tmp_path, capsys):
    """Each record carries the content hash of its graph (run-wide ``settings``): resuming into the same --out with
    the same file reuses the record, with another graph saved under the same path it re-runs the cell."""
    from ccgc.cli import main
    from ccgc.data import graph_hash
    from ccgc.graphs import load_graph
    from torch_geometric.datasets import KarateClub

    path, out = tmp_path / "graph.pt", tmp_path / "out"
    graph = KarateClub()[0]
    torch.save(graph, path)
    argv = ["baselines", "--data.dataset", "pyg", "--data.path", str(path), "--seeds", "0", "--out", str(out)]
    assert main(argv) == 0
    (record_path,) = (out / "records").glob("*.json")
    first = json.loads(record_path.read_text())
    assert first["settings"] == {"graphs": {"pyg": graph_hash(load_graph("pyg", None, path))}}
    capsys.readouterr()
    assert main(argv) == 0
    assert "record found, skipped" in "".join(capsys.readouterr())
    graph.x = graph.x.flip(0)  # same name, same shapes, other content
    torch.save(graph, path)
    assert main(argv) == 0
    assert "other parameters or settings: re-run" in "".join(capsys.readouterr())
    second = json.loads(record_path.read_text())
    assert second["settings"]["graphs"]["pyg"] != first["settings"]["graphs"]["pyg"]


def test_user_errors_are_one_line(capsys, tmp_path):
    from ccgc.cli import main

    cases = [
        (["reproduce", "--data.dataset", "nope", "--quick"], "unknown 'nope'"),
        (["reproduce", "--methods", "fixed"], "unknown 'fixed'"),
        (["baselines", "--data.dataset", "pyg"], "needs --data.path"),
        (["trace", "--data.dataset", "amap", "--data.root", str(tmp_path)], "amap_feat.npy does not exist"),
        (["train", "--model.tau", "2", "--trainer.fast_dev_run=true"], "tau=2.0"),
    ]
    for argv, expected in cases:
        assert main(argv) != 0, argv
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert err[-1].startswith("ccgc: error: ") and expected in err[-1], (argv, err)
        assert "Traceback" not in "\n".join(err)


def test_benchmark_verbs_write_their_reports(tmp_path):
    from ccgc.cli import main

    from paperlab_core.results import load_results

    epoch = tmp_path / "epoch"
    assert (
        main(["benchmark", "epoch-time", "--data.dataset", "sbm", "--epochs", "12", "--out", str(epoch)]) == 0
    )
    report = json.loads((epoch / "benchmark.json").read_text())
    assert (
        report["epochs"] == 12 and report["ours"]["total_s"] > 0 and report["official_pattern"]["total_s"] > 0
    )
    table = load_results(epoch / "results.json")["tables"]["main"]
    assert [row[0] for row in table["rows"]][-1] == "total_s"
    scale = tmp_path / "scale"
    args = ["benchmark", "scale", "--nodes", "300", "--edges", "1500", "--clusters", "3", "--epochs", "2"]
    assert main([*args, "--out", str(scale)]) == 0
    report = json.loads((scale / "benchmark.json").read_text())
    assert report["nodes"] == 300 and report["epochs"] == 2 and report["last"]["epoch"] == 1


def test_scgc_runs_as_published_in_baselines_and_reproduce(tmp_path, monkeypatch):
    """`baselines --scgc` and `reproduce --methods scgc` call SCGC the same way: its official t/lr and its
    official optimiser (gradients never zeroed), so their SCGC numbers are comparable."""
    from ccgc import baselines
    from ccgc.cli import main

    calls = []

    def fake_scgc(graph, **kwargs):
        calls.append(kwargs)
        cell = {"epoch": 0, "pretrain": False, "acc": 50.0, "nmi": 0.0, "ari": 0.0, "f1": 50.0}
        return {"best": cell, "best_trained": cell, "last": cell, "t": 3, "lr": 1e-3}

    monkeypatch.setattr(baselines, "run_scgc", fake_scgc)
    common = ["--data.dataset", "karate", "--seeds", "0"]
    assert main(["baselines", *common, "--scgc", "--out", str(tmp_path / "b")]) == 0
    assert main(["reproduce", *common, "--methods", "scgc", "--out", str(tmp_path / "r")]) == 0
    assert len(calls) == 2 and calls[0] == calls[1]
    assert calls[0]["legacy_accumulate_grads"] is True and calls[0]["epochs"] == 400
