"""The command line: registries behind the literal choices, train → evaluate, cv, reproduce shards, generate →
validate → prepare, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dfme import cli
from dfme.cli import main

TINY = str(Path(__file__).with_name("tiny.yaml"))


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """One preprocessing cache for the module (the tiny benchmark is processed once)."""
    import os

    folder = tmp_path_factory.mktemp("data")
    before = os.environ.get("PAPERLAB_DATA")
    os.environ["PAPERLAB_DATA"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("PAPERLAB_DATA")
    else:
        os.environ["PAPERLAB_DATA"] = before


def test_cli_choices_equal_the_registries():
    from dfme.dataset import LAYOUTS
    from dfme.flow import FLOWS
    from dfme.losses import IMBALANCE
    from dfme.models import MODELS
    from dfme.reproduce import TABLES
    from dfme.sampling import STRATEGIES

    assert cli.MODEL_CHOICES == MODELS and cli.SAMPLING_CHOICES == STRATEGIES
    assert cli.IMBALANCE_CHOICES == IMBALANCE and cli.LAYOUT_CHOICES == LAYOUTS
    assert cli.FLOW_CHOICES == FLOWS and cli.TABLE_CHOICES == TABLES


def _runs(kind: str) -> list[Path]:
    import os

    return sorted(Path(os.environ["PAPERLAB_RUNS"], "dfme").glob(f"*-{kind}*"))


def test_train_then_evaluate_restores_the_checkpoint(data_home, capsys):
    assert main(["train", "--config", TINY, "--run_name", "tiny"]) == 0
    (run,) = _runs("tiny")
    fit = json.loads((run / "metrics.json").read_text())["fit"]
    assert {"val/uf1", "val/uar", "val/acc"} <= set(fit)
    assert main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt")]) == 0
    (evaluation,) = _runs("evaluate")
    metrics = json.loads((evaluation / "metrics.json").read_text())
    report = metrics["test_report"]
    assert len(report["confusion"]) == 7 and sum(map(sum, report["confusion"])) > 0
    assert metrics["test"]["test/uf1"] == pytest.approx(report["uf1"])


def test_flow_model_and_au_task_train(data_home):
    argv = [
        "train",
        "--config",
        TINY,
        "--model.name",
        "ststnet",
        "--data.sampling",
        "onset_apex_pair",
        "--run_name",
        "flow",
    ]
    assert main(argv) == 0
    argv = ["train", "--config", TINY, "--data.task", "au", "--run_name", "au"]
    assert main(argv) == 0
    (run,) = _runs("au")
    assert "val/macro_f1" in json.loads((run / "metrics.json").read_text())["fit"]


def test_cv_reports_both_aggregations(data_home, tmp_path):
    out = tmp_path / "cv"
    assert main(["cv", "--config", TINY, "--run-folds", "0,1", "--out", str(out)]) == 0
    summary = json.loads((out / "metrics.json").read_text())["cv"]
    assert {"concatenated/uf1", "per_fold/uf1"} <= set(summary)
    folds = json.loads((out / "cv.json").read_text())["runs"][0]["folds"]
    assert [f["fold"] for f in folds] == [0, 1]
    assert not set(folds[0]["sample_ids"]) & set(folds[1]["sample_ids"])


def test_reproduce_shards_merge_to_the_whole_run(data_home, tmp_path):
    common = [
        "reproduce",
        "--config",
        TINY,
        "--tables",
        "gate",
        "--folds",
        "0,1",
        "--epochs",
        "1",
        "--seeds",
        "0",
    ]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert main([*common, "--shard", "1/2", "--out", str(tmp_path / "s1")]) == 0
    assert main([*common, "--shard", "2/2", "--out", str(tmp_path / "s2")]) == 0
    assert (
        main(
            ["reproduce", "--merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m")]
        )
        == 0
    )
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    merged = json.loads((tmp_path / "m" / "results.json").read_text())
    assert merged["tables"]["gate"] == whole["tables"]["gate"]
    assert [row[0] for row in whole["tables"]["gate"]["rows"]] == ["ce", "cb"]
    markdown = (tmp_path / "whole" / "results.md").read_text()
    assert markdown.count("## Gate:") == 1 and markdown.count("## Gated claims") == 1
    assert "Table B" not in markdown  # no table that only repeats the gate's rows
    assert merged["checks"]["gated"] is False and merged["tables"]["claims"] == whole["tables"]["claims"]


def test_generate_validate_prepare(tmp_path):
    root = tmp_path / "gen"
    assert main(["generate", "--out", str(root), "--subjects", "3", "--limit", "4", "--format", "jpg"]) == 0
    assert len((root / "annotations.csv").read_text().splitlines()) == 5
    assert json.loads((root / "meta.json").read_text())["config"]["subjects"] == 3
    assert main(["validate", "--data.root", str(root), "--out", str(tmp_path / "v")]) == 0
    assert json.loads((tmp_path / "v" / "metrics.json").read_text())["validate"]["samples"] == 4
    argv = [
        "prepare",
        str(root),
        "--data.size",
        "32",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "p"),
    ]
    assert main(argv) == 0
    report = json.loads((tmp_path / "p" / "metrics.json").read_text())["preprocess"]
    assert sum(report["align_status"].values()) == 4
    assert len(list((tmp_path / "cache").glob("processed-*.npz"))) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "--data.root", "{tmp}/none"], "folder {tmp}/none does not exist"),
        (["prepare", "{tmp}/none"], "dataset root {tmp}/none does not exist"),
        (["cv", "--run-folds", "x"], "--run-folds takes fold numbers"),
        (["reproduce", "--tables", "Z"], "unknown 'Z'"),
        (["generate", "--out", "{tmp}", "--format", "gif"], "invalid choice: 'gif'"),
        (["train", "--model.name", "nope"], "nope"),
        (["train", "--data.fold", "12"], "data.fold must be in 0..9"),
    ],
)
def test_user_errors_are_one_line(argv, message, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dfme: error: ") and message.format(tmp=tmp_path) in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_generate_is_byte_identical_under_a_seed(tmp_path):
    for name in ("a", "b"):
        argv = ["generate", "--out", str(tmp_path / name), "--subjects", "2", "--limit", "3", "--seed", "4"]
        assert main(argv) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "annotations.csv").read_bytes() == (b / "annotations.csv").read_bytes()
    files = sorted(p.name for p in (a / "frames").iterdir())
    assert len(files) == 3
    assert all((a / "frames" / f).read_bytes() == (b / "frames" / f).read_bytes() for f in files)


def test_bench_functions_at_small_size():
    from dfme.bench import bench_pipeline, bench_tim

    tim = bench_tim(batch=2, n=20, length=8, side=16, loop_clips=1)
    # float32 paths on values up to 255: 1e-2 absolute is ~4e-5 relative, a few ulps over a 20-term sum
    assert tim["max_abs_diff_vs_loop"] < 1e-2 and tim["speedup_weights"] > 0
    pipeline = bench_pipeline(clips=2, passes=1, workers=0, layouts=["npy"])
    assert pipeline["npy"]["clips"] == 2 and pipeline["npy_ceiling"]["clips_per_s"] > 0
    assert set(pipeline["gate"]) == {"target", "passed", "ratio_to_ceiling"}
    from dfme.bench import bench_tables

    tables = bench_tables(
        {"pipeline": pipeline, "tim": tim, "load_average": [3.0, 2, 1], "load_average_after": [4.0]}
    )
    rows = tables["pipeline"].rows
    assert rows[0][0] == "npy" and rows[0][1] == pipeline["npy"]["clips_per_s"]
    assert rows[-1][2:] == ["3.0 → 4.0", "measured, not idle"]
    assert [r[0] for r in tables["tim"].rows][-1].startswith("weights")


def test_generate_refuses_an_existing_dataset(tmp_path, capsys):
    (tmp_path / "annotations.csv").write_text("sample_id\n")
    assert main(["generate", "--out", str(tmp_path), "--subjects", "2", "--limit", "1"]) == 1
    assert "already holds a dataset" in capsys.readouterr().err


def test_claims_table_verdicts():
    from dfme.reproduce import claims_table

    checks = {"seeds": 3, "folds": [0, 1], "uf1_threshold": 0.45, "r3d_ce_uf1": 0.5, "r3d_cb_uf1": 0.4,
              "r3d_ce_uar": 0.5, "r3d_cb_uar": 0.6, "threshold_passed": True, "cb_beats_ce_uf1": False,
              "cb_beats_ce_uar": True, "gated": True}  # fmt: skip
    rows = claims_table(checks).rows
    assert [r[3] for r in rows] == ["pass", "MISS", "higher"]
    assert abs(rows[1][1] - (-0.1)) < 1e-12 and abs(rows[2][1] - 0.1) < 1e-12
    rows = claims_table({**checks, "gated": False, "seeds": 1}).rows
    assert rows[0][3] == "pass (not gated, < 3 seeds)" and rows[1][3] == "miss (not gated, < 3 seeds)"


def test_reproduce_cells_train_at_the_spec_lr_unless_told(monkeypatch, capsys):
    """Every cell trains at the spec's lr 1e-3 (§2.7), not default.yaml's CPU-scale 3e-3; ``--lr`` overrides it,
    the lr is part of the configuration key (records of different lrs never merge into one row), and records
    from before 0.3.0 (no ``lr`` in their params) still train at the preset's lr."""
    import argparse

    from dfme import reproduce
    from dfme.folds import load_preset

    assert load_preset()["model"]["lr"] == 0.003  # the dfme train default this test must not inherit
    args = argparse.Namespace(quick=False, full=False, folds=["3"], tables=["gate"], config=None, epochs=15,
                              seeds=[0], lr=None)  # fmt: skip
    cells, meta = reproduce.plan(args)
    assert meta["lr"] == 1e-3 and {c.params["lr"] for c in cells} == {1e-3}
    assert [c.key for c in cells] == ["r3d_18-ce-tim_on_off-onset_diff-e15-lr0.001/seed0/fold3",
                                      "r3d_18-cb-tim_on_off-onset_diff-e15-lr0.001-rmean/seed0/fold3"]  # fmt: skip
    faster, _ = reproduce.plan(argparse.Namespace(**{**vars(args), "lr": 0.003}))
    assert {c.params["lr"] for c in faster} == {0.003} and faster[0].key.endswith("-e15-lr0.003/seed0/fold3")

    seen = []
    monkeypatch.setattr(reproduce, "fit_fold", lambda model, data, *a: seen.append(model["lr"]) or {})
    reproduce.run_cell(dict(cells[0].params), "cpu")
    old = {k: v for k, v in cells[0].params.items() if k != "lr"}
    reproduce.run_cell(old, "cpu")
    assert seen == [1e-3, 0.003]
    assert main(["reproduce", "--lr", "0", "--tables", "gate"]) != 0
    assert "--lr: expected a positive number, got '0'" in capsys.readouterr().err


def test_reproduce_reruns_records_of_another_preprocessing_version(monkeypatch, tmp_path):
    """A run resumed into an old folder reuses records of the current cache version only: records made before
    0.5.0's `onset_diff` fix (no settings) or under another version are trained again."""
    from dfme import reproduce
    from dfme.sources import CACHE_VERSION

    calls = []

    def fake_cell(params, accelerator):
        calls.append(params["fold"])
        return {
            "y_true": [0, 1, 2],
            "y_pred": [0, 1, 1],
            "sample_ids": ["a", "b", "c"],
            "fold": params["fold"],
        }

    monkeypatch.setattr(reproduce, "run_cell", fake_cell)
    common = ["reproduce", "--tables", "gate", "--folds", "0,1", "--seeds", "0", "--out", str(tmp_path)]
    assert main(common) == 0 and len(calls) == 4
    records = sorted((tmp_path / "records").glob("*.json"))
    assert {json.loads(p.read_text())["settings"]["cache_version"] for p in records} == {CACHE_VERSION}
    legacy = json.loads(records[0].read_text())
    del legacy["settings"]
    records[0].write_text(json.dumps(legacy))
    older = json.loads(records[1].read_text())
    older["settings"]["cache_version"] = CACHE_VERSION - 1
    records[1].write_text(json.dumps(older))
    calls.clear()
    assert main(common) == 0
    assert len(calls) == 2  # the two other records were reused


def test_reproduce_respects_a_config_file_lr(tmp_path):
    """A ``--config`` file that sets ``model.lr`` trains at that lr; ``--lr`` still wins; a file without one gets
    the spec's lr, not default.yaml's."""
    import argparse

    from dfme import reproduce

    own, other = tmp_path / "own.yaml", tmp_path / "other.yaml"
    own.write_text("model:\n  lr: 0.0005\n")
    other.write_text("model:\n  weight_decay: 0.001\n")
    args = argparse.Namespace(quick=False, full=False, folds=["3"], tables=["gate"], config=str(own), epochs=15,
                              seeds=[0], lr=None)  # fmt: skip
    assert {c.params["lr"] for c in reproduce.plan(args)[0]} == {0.0005}
    told = argparse.Namespace(**{**vars(args), "lr": 0.002})
    assert {c.params["lr"] for c in reproduce.plan(told)[0]} == {0.002}
    plain = argparse.Namespace(**{**vars(args), "config": str(other)})
    assert {c.params["lr"] for c in reproduce.plan(plain)[0]} == {reproduce.SPEC_LR}


def test_reproduce_au_table_averages_per_au_f1_over_seeds():
    """The AU table's per-AU rows are the seed mean ± std of the F1 on the predictions concatenated over folds
    (like its macro-F1 row), in numeric AU order."""
    import argparse

    from dfme import reproduce

    args = argparse.Namespace(quick=False, full=False, folds=["0", "1"], tables=["au"], config=None, epochs=15,
                              seeds=[0, 1], lr=None)  # fmt: skip
    names = ["AU10", "AU2", "AU1"]
    rng = np.random.default_rng(0)
    records, truth, preds = [], {0: [], 1: []}, {0: [], 1: []}
    for cell in reproduce.plan(args)[0]:
        y_true, y_pred = rng.random((6, 3)) < 0.5, rng.random((6, 3)) < 0.5
        truth[cell.params["seed"]].append(y_true)
        preds[cell.params["seed"]].append(y_pred)
        result = {"y_true": y_true.astype(int).tolist(), "y_pred": y_pred.astype(int).tolist(),
                  "per_au_f1": dict.fromkeys(names, 0.0), "macro_f1": 0.0, "micro_f1": 0.0}  # fmt: skip
        records.append({"key": cell.key, "params": dict(cell.params), "result": result})

    def f1(t: np.ndarray, p: np.ndarray) -> float:
        tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
        return 2 * tp / (2 * tp + fp + fn)

    rows = dict(reproduce.summarize(records)["au"].rows)
    assert [r for r in rows if r.startswith("F1 ")] == ["F1 AU1", "F1 AU2", "F1 AU10"]
    for column, name in enumerate(names):
        per_seed = [
            f1(np.concatenate(truth[s])[:, column], np.concatenate(preds[s])[:, column]) for s in (0, 1)
        ]
        assert rows[f"F1 {name}"] == f"{np.mean(per_seed):.3f} ± {np.std(per_seed):.3f}"


def test_reproduce_weight_reduction_keys_and_legacy_records(monkeypatch):
    """``cb`` cells train with the mean of w_y·CE (0.4.0) and carry ``-rmean`` in their key; ``--weight-reduction
    weighted_mean`` gives the ≤ 0.3 key, so committed records merge with it; a record without the field (≤ 0.3)
    re-runs with the Σw-normalised loss it was made with; ``ce`` keys are unchanged."""
    import argparse

    from dfme import reproduce

    args = argparse.Namespace(quick=False, full=False, folds=["3"], tables=["gate"], config=None, epochs=15,
                              seeds=[0], lr=None)  # fmt: skip
    ce, cb = reproduce.plan(args)[0]
    assert "weight_reduction" not in ce.params and cb.params["weight_reduction"] == "mean"
    legacy = reproduce.plan(argparse.Namespace(**{**vars(args), "weight_reduction": "weighted_mean"}))[0]
    assert (
        legacy[0].key == ce.key and legacy[1].key == "r3d_18-cb-tim_on_off-onset_diff-e15-lr0.001/seed0/fold3"
    )
    seen = []
    monkeypatch.setattr(
        reproduce, "fit_fold", lambda model, data, *a: seen.append(model["weight_reduction"]) or {}
    )
    reproduce.run_cell(dict(cb.params), "cpu")
    reproduce.run_cell({k: v for k, v in cb.params.items() if k != "weight_reduction"}, "cpu")
    assert seen == ["mean", "weighted_mean"]


def test_gate_checks_prefer_the_mean_cb_when_a_record_holds_both():
    from dfme.reproduce import gate_checks

    base = {
        "model": "r3d_18",
        "sampling": "tim_on_off",
        "input": "onset_diff",
        "fraction": 1.0,
        "task": "emotion",
    }

    def score(uf1: float) -> dict:
        return {
            "seeds": [0, 1, 2],
            "folds": [0],
            "concatenated/uf1": (uf1, 0.0, []),
            "concatenated/uar": (uf1, 0.0, []),
        }

    params = {"ce": {**base, "imbalance": "ce"}, "cb_old": {**base, "imbalance": "cb"},
              "cb_new": {**base, "imbalance": "cb", "weight_reduction": "mean"}}  # fmt: skip
    scores = {"ce": score(0.5), "cb_old": score(0.4), "cb_new": score(0.6)}
    for order in (["ce", "cb_old", "cb_new"], ["ce", "cb_new", "cb_old"]):
        checks = gate_checks(scores, {k: params[k] for k in order})
        assert (
            checks["r3d_cb_uf1"] == 0.6
            and checks["cb_weight_reduction"] == "mean"
            and checks["cb_beats_ce_uf1"]
        )
    old = gate_checks(scores, {k: params[k] for k in ("ce", "cb_old")})
    assert old["r3d_cb_uf1"] == 0.4 and old["cb_weight_reduction"] == "weighted_mean"
