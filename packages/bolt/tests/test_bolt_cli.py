"""The command line end to end on small data (spec §6 item 15, bad input, the reproduce mechanics)."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from bolt_ssl import cli
from bolt_ssl.cli import main

SMALL = ["--data.n_pool", "256", "--data.n_train", "60", "--data.n_val", "32", "--data.n_test", "40"]


def _newest(runs: Path, suffix: str) -> Path:
    return max(
        (p for p in (runs / "bolt_ssl").iterdir() if p.name.endswith(suffix)), key=lambda p: p.stat().st_mtime
    )


def test_cli_choice_tuples_equal_the_registries():
    from bolt_ssl.bench import BENCH_METHODS
    from bolt_ssl.pretrain import METHODS
    from bolt_ssl.reproduce import BRANCHES, DATASETS, INITS

    assert cli.BRANCHES == BRANCHES
    assert cli.METHOD_CHOICES == METHODS
    assert cli.INIT_METHODS == INITS
    assert cli.REPRODUCE_DATASETS == DATASETS
    assert cli.BENCH_METHODS == BENCH_METHODS
    from bolt_ssl.models import PROBE_FEATURES
    from bolt_ssl.protocols import PROBE_MODES

    assert cli.PROBE_MODES == PROBE_MODES
    assert cli.PROBE_FEATURES == PROBE_FEATURES


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """`bolt train` for one epoch on a small synthetic-retina (2 optimiser steps)."""
    import os

    runs = Path(os.environ["PAPERLAB_RUNS"])
    assert main(["train", "--trainer.max_epochs", "1", "--run_name", "small", *SMALL]) == 0
    return _newest(runs, "-small")


def test_train_writes_backbone_metrics_and_a_resumable_target(trained):
    summary = json.loads((trained / "pretrain_metrics.json").read_text())
    assert summary["method"] == "bolt" and summary["steps"] == 2
    assert [h["epoch"] for h in summary["history"]] == [-1, 0]
    assert {"byol", "rank", "rank_acc", "proj_std"} <= set(summary["final"])
    backbone = torch.load(trained / "backbone.pt", weights_only=True)
    assert backbone["kind"] == "bolt-backbone" and backbone["vit"]["embed_dim"] == 64
    blob = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=False)
    from bolt_ssl.module import module_from_config

    module = module_from_config(blob["paperlab"]["config"]["model"])
    module.load_state_dict(blob["state_dict"])
    for name, p in module.nets.target.named_parameters():  # ξ restored exactly, and it is not θ
        assert torch.equal(p, blob["state_dict"][f"nets.target.{name}"])
    assert not torch.equal(module.nets.target.vit.pos_embed, module.nets.online.vit.pos_embed)
    assert all(torch.equal(backbone["state_dict"][k], v) for k, v in module.nets.online.state_dict().items())
    target = torch.load(
        trained / "backbone_target.pt", weights_only=True
    )  # ξ on its own (--init-branch target)
    assert target["branch"] == "target"
    assert all(torch.equal(target["state_dict"][k], v) for k, v in module.nets.target.state_dict().items())
    from bolt_ssl.models import ViTConfig
    from bolt_ssl.protocols import load_init

    init = load_init(str(trained), ViTConfig(), "target")
    assert init.source.endswith("backbone_target.pt")
    assert all(torch.equal(init.state_dict[k], v) for k, v in module.nets.target.state_dict().items())


def test_evaluate_a_pretraining_checkpoint_needs_no_other_flag(trained, tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--ckpt", str(trained / "checkpoints" / "last.ckpt"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["protocol"] == "linear_probe" and metrics["test"]["n_test"] == 40
    assert 0 <= metrics["test"]["qwk"] <= 1 or metrics["test"]["qwk"] < 0
    assert metrics["pretext"]["images"] == 32 and 0 <= metrics["pretext"]["rank_acc"] <= 1


def test_finetune_linear_probe_and_evaluate_finetuned(trained, tmp_path, npz_factory):
    npz = npz_factory("retinamnist.npz", counts=(40, 10, 20))
    data = ["--data.name", "retinamnist", "--data.root", str(npz.parent)]
    ft = tmp_path / "ft"
    assert (
        main(
            [
                "finetune",
                "--init",
                str(trained),
                *data,
                "--label-fraction",
                "0.5",
                "--steps",
                "3",
                "--layer-decay",
                "0.65",
                "--out",
                str(ft),
            ]
        )
        == 0
    )
    record = json.loads((ft / "metrics.json").read_text())
    assert record["test"]["n_labelled"] == 20 and record["test"]["protocol"] == "finetune"
    assert record["test"]["data_official"] is False and record["protocol_config"]["steps"] == 3
    assert record["protocol_config"]["layer_decay"] == 0.65
    assert main(["evaluate", "--ckpt", str(ft / "finetuned.pt"), "--out", str(tmp_path / "ev")]) == 0
    again = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert again["test"]["accuracy"] == pytest.approx(record["test"]["accuracy"], abs=1e-12)
    lp = tmp_path / "lp"
    assert main(["linear-probe", "--init", "scratch", *data, "--label-k", "2", "--out", str(lp)]) == 0
    assert json.loads((lp / "metrics.json").read_text())["test"]["n_labelled"] == 10
    lp4 = tmp_path / "lp4"
    argv4 = ["linear-probe", "--init", str(trained), *data, "--label-k", "2", "--probe-features", "last4"]
    assert main([*argv4, "--out", str(lp4)]) == 0
    assert json.loads((lp4 / "metrics.json").read_text())["protocol_config"]["probe_features"] == "last4"
    lpv = tmp_path / "lpv"
    assert (
        main(
            [
                "linear-probe",
                "--init",
                "scratch",
                *data,
                "--label-k",
                "2",
                "--probe",
                "val",
                "--out",
                str(lpv),
            ]
        )
        == 0
    )
    tuned = json.loads((lpv / "metrics.json").read_text())
    assert (
        tuned["protocol_config"]["probe"] == "val"
        and tuned["probe_c"] in tuned["protocol_config"]["probe_c_grid"]
    )
    px = tmp_path / "px"
    assert main(["linear-probe", "--pixels", *data, "--label-fraction", "1.0", "--out", str(px)]) == 0
    assert json.loads((px / "metrics.json").read_text())["test"]["protocol"] == "pixel_lr"


@pytest.mark.parametrize("method", ["byol", "mae", "token_byol"])
def test_pretrain_every_baseline_on_digits(method, tmp_path):
    assert main(["pretrain", "--config", "digits", "--method", method, "--trainer.fast_dev_run", "true",
                 "--run_name", f"d-{method}"]) == 0  # fmt: skip
    import os

    run = _newest(Path(os.environ["PAPERLAB_RUNS"]), f"-d-{method}")
    assert json.loads((run / "pretrain_metrics.json").read_text())["method"] == method
    state = torch.load(run / "backbone.pt", weights_only=True)
    assert state["vit"]["in_chans"] == 1 and state["method"] == method
    assert (run / "backbone_target.pt").is_file() == (method != "mae")  # MAE has no EMA target


def test_a_reproduce_pretraining_depends_on_its_seed_alone(tmp_path):
    """The same cell gives the same backbone whatever RNG state the cells before it left (grid order, --cells)."""
    from bolt_ssl.presets import deep_merge, load_preset
    from bolt_ssl.reproduce import pretrain

    config = deep_merge(load_preset("digits"), {"model": {"method": "bolt", "seed": 3}})
    config["epochs"] = 1
    states = []
    for name, prior in (("a", 100), ("b", 101)):
        torch.manual_seed(prior)  # what a different set of earlier cells would leave behind
        torch.rand(1000)
        np.random.rand(10)  # noqa: NPY002 - the legacy global stream is part of the state under test
        pretrain(config, tmp_path / name, "cpu", lambda *_: None)
        states.append(torch.load(tmp_path / name / "backbone.pt", weights_only=True))

    def tensors(tree, prefix=""):
        if isinstance(tree, torch.Tensor):
            yield prefix, tree
        elif isinstance(tree, dict):
            for key, value in tree.items():
                yield from tensors(value, f"{prefix}/{key}")

    a, b = dict(tensors(states[0])), dict(tensors(states[1]))
    assert a.keys() == b.keys() and len(a) > 10
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]


def _one_line_error(capsys, argv, code, fragment):
    assert main(argv) == code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("bolt: error: ") and fragment in err[-1], err
    assert not any("Traceback" in line for line in err)


def test_bad_inputs_are_one_line_errors(capsys, tmp_path, npz_factory):
    grey = npz_factory("breastmnist.npz", rgb=False, label_shape="n", n_labels=2)
    _one_line_error(capsys, ["train", "--data.name", "breastmnist", "--data.root", str(tmp_path), "--trainer.fast_dev_run", "true"],
                    1, "1-channel 28-px images but the ViT expects model.vit.in_chans 3")  # fmt: skip
    assert grey.is_file()
    npz_factory("keys/retinamnist.npz", drop_key="test_labels")
    _one_line_error(capsys, ["linear-probe", "--data.name", "retinamnist", "--data.root", str(tmp_path / "keys"),
                             "--label-k", "1"], 1, "missing keys test_labels")  # fmt: skip
    npz_factory("shape/retinamnist.npz", label_shape="multi", n_labels=2)
    _one_line_error(capsys, ["linear-probe", "--data.name", "retinamnist", "--data.root", str(tmp_path / "shape"),
                             "--label-k", "1"], 1, "train_labels has shape (12, 2)")  # fmt: skip
    _one_line_error(capsys, ["finetune", "--init", "imagenet:/no/weights.pth", "--label-k", "1"], 1,
                    "skipped (needs hub weights)")  # fmt: skip
    _one_line_error(capsys, ["finetune", "--label-fraction", "2"], 2, "expected a fraction in (0, 1]")
    _one_line_error(capsys, ["pretrain", "--method", "simclr"], 2, "simclr")


def test_missing_medmnist_exits_2_naming_file_and_md5(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_SHARED_DATA", "none")
    monkeypatch.setenv("HOME", str(tmp_path))
    _one_line_error(capsys, ["linear-probe", "--data.name", "retinamnist", "--label-k", "1"], 2,
                    "retinamnist.npz does not exist (searched")  # fmt: skip


def test_bench_and_datasets_verbs(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--config", "digits", "--methods", "bolt,byol", "--batch", "8", "--steps", "1", "--rounds", "1",
            "--warmup", "0", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert set(result["methods"]) == {"bolt", "byol"} and result["ratio_bolt_over_byol"] > 0
    for m in result["methods"].values():
        assert 0 < m["median_step_cpu_s"] and m["cpu_images_per_s"] == pytest.approx(
            8 / m["median_step_cpu_s"]
        )
        # CPU s per wall s ≤ the intra-op threads, plus one for the process's other (Python, OpenMP spin) threads
        assert 0 < m["core_share"] < torch.get_num_threads() + 1
    assert result["gate"]["passed_cpu"] == (result["ratio_bolt_over_byol_cpu"] >= 0.95)
    assert main(["datasets"]) == 0
    assert "retinamnist" in capsys.readouterr().out


def test_reproduce_grid_shares_one_protocol_and_merges(tmp_path, monkeypatch, capsys):
    """A tiny digits grid (5 fine-tune steps): protocol configs differ only in ``init``; --merge rebuilds it."""
    import bolt_ssl.protocols as protocols

    monkeypatch.setattr(protocols, "ProtocolConfig", functools.partial(protocols.ProtocolConfig, steps=5))
    out = tmp_path / "rep"
    argv = [
        "reproduce",
        "--quick",
        "--dataset",
        "digits",
        "--methods",
        "scratch,bolt",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    protocols_seen = [r["result"]["protocol"] for r in results["records"] if r["params"]["kind"] == "method"]
    assert {p["init"] for p in protocols_seen} == {"scratch", "bolt"}
    assert (
        len({json.dumps({k: v for k, v in p.items() if k != "init"}, sort_keys=True) for p in protocols_seen})
        == 1
    )
    assert (out / "metric_vs_labels.png").is_file() and (out / "pretext_curves.png").is_file()
    assert "target: BOLT (λ=0.5) > scratch" in (out / "results.md").read_text()
    indices = [
        r["result"]["labels"]["k=10"]["0"]["indices"]
        for r in results["records"]
        if r["params"]["kind"] == "method"
    ]
    assert indices[0] == indices[1] and len(indices[0]) == 100  # the same labelled images for every method
    merged = tmp_path / "merged"
    assert main(["reproduce", "--merge", str(out), "--out", str(merged)]) == 0
    again = json.loads((merged / "results.json").read_text())
    assert again["tables"] == results["tables"]
    assert main(argv) == 0  # every record is reused: nothing recomputed
    assert json.loads((out / "results.json").read_text())["tables"] == results["tables"]
    first = json.loads((out / "pretrain" / "bolt-seed0" / "pretrain_metrics.json").read_text())
    # another --epochs must neither reuse the stale record nor the cached 1-epoch backbone
    assert (
        main([*argv[: argv.index("--epochs")], "--epochs", "2", "--out", str(out), "--methods", "bolt"]) == 0
    )
    longer = json.loads((out / "pretrain" / "bolt-seed0" / "pretrain_metrics.json").read_text())
    assert longer["steps"] == 2 * first["steps"]
    bolt = [
        r
        for r in json.loads((out / "results.json").read_text())["records"]
        if r["params"]["kind"] == "method"
    ]
    assert [(r["params"]["method"], r["params"]["epochs"], r["result"]["epochs"]) for r in bolt] == [
        ("bolt", 2, 2)
    ]
    assert np.isfinite(results["tables"]["main"]["rows"][0][-1])
    # --probe val --probe-only re-probes the cached backbone: no pre-training, no fine-tuning, C from the grid
    stamp = (out / "pretrain" / "bolt-seed0" / "backbone.pt").stat().st_mtime_ns
    probe_argv = [*argv[: argv.index("--epochs")], "--epochs", "2", "--probe", "val", "--probe-only", "--out"]
    assert main([*probe_argv, str(out), "--cells", "bolt/,scratch/"]) == 0
    assert (out / "pretrain" / "bolt-seed0" / "backbone.pt").stat().st_mtime_ns == stamp
    probed = json.loads((out / "results.json").read_text())
    cells = [r["result"] for r in probed["records"] if r["params"]["kind"] == "method"]
    assert {c["protocol"]["probe"] for c in cells} == {"val"} and all(
        c["protocol"]["probe_only"] for c in cells
    )
    for c in cells:
        for cell in c["labels"]["k=10"].values():
            assert "finetune" not in cell and cell["linear_probe"]["probe_c"] in c["protocol"]["probe_c_grid"]
    assert probed["tables"]["main"]["rows"] == [] and probed["tables"]["probe_c"]["rows"]
    assert any("val-tuned C" in row[0] for row in probed["tables"]["targets"]["rows"])
    # --probe-features last4 (ours) re-probes the same cache into records of their own, labelled in the gate line
    last4_argv = [
        *argv[: argv.index("--epochs")],
        "--epochs",
        "2",
        "--probe-features",
        "last4",
        "--probe-only",
    ]
    assert main([*last4_argv, "--out", str(out), "--cells", "bolt/,scratch/"]) == 0
    assert (out / "pretrain" / "bolt-seed0" / "backbone.pt").stat().st_mtime_ns == stamp
    last4 = json.loads((out / "results.json").read_text())
    assert {
        r["result"]["protocol"]["probe_features"] for r in last4["records"] if r["params"]["kind"] == "method"
    } == {"last4"}
    assert any("last4 features" in row[0] for row in last4["tables"]["targets"]["rows"])
    # --branch online,target (ours): the EMA encoder of the same cache, probed into records of its own key and params
    real_load, loaded = protocols.load_init, []

    def spy(spec, *a, **k):
        loaded.append(real_load(spec, *a, **k))
        return loaded[-1]

    monkeypatch.setattr(protocols, "load_init", spy)
    branch_argv = [
        *argv[: argv.index("--epochs")],
        "--epochs",
        "2",
        "--branch",
        "online,target",
        "--probe-only",
    ]
    assert main([*branch_argv, "--out", str(out)]) == 0
    assert (out / "pretrain" / "bolt-seed0" / "backbone.pt").stat().st_mtime_ns == stamp
    both = json.loads((out / "results.json").read_text())
    params = {r["key"]: r["params"] for r in both["records"]}
    assert set(params) == {"floors/seed0", "scratch/seed0", "bolt/seed0", "bolt-target/seed0"}
    assert params["bolt-target/seed0"].pop("branch") == "target" and "branch" not in params["bolt/seed0"]
    assert params["bolt-target/seed0"] == params["bolt/seed0"]  # the branch is the only difference
    by_key = {r["key"]: r["result"] for r in both["records"]}
    assert by_key["bolt-target/seed0"]["protocol"]["branch"] == "target"
    # the target cell's network holds ξ (backbone_target.pt), not θ: this fails if the online weights were loaded
    cache = out / "pretrain" / "bolt-seed0"
    xi = torch.load(cache / "backbone_target.pt", weights_only=True)["state_dict"]
    theta = torch.load(cache / "backbone.pt", weights_only=True)["state_dict"]
    (target_init,) = [i for i in loaded if i.source.endswith("backbone_target.pt")]
    assert all(torch.equal(target_init.state_dict[k], v) for k, v in xi.items())
    assert not all(torch.equal(target_init.state_dict[k], v) for k, v in theta.items())
    rows = [row[0] for row in both["tables"]["linear_probe"]["rows"]]
    assert "BOLT (λ=0.5) [EMA target]" in rows and "BOLT (λ=0.5)" in rows and "scratch (random init)" in rows
    assert [row[:2] for row in both["tables"]["branches_wide"]["rows"]] == [["BOLT (λ=0.5)", "linear probe"]]
    assert {line["label"] for line in both["branch_lines"]} == {"k=1", "k=3", "k=10"}
    assert any("EMA target encoder" in row[0] for row in both["tables"]["targets"]["rows"])
    # a cache without backbone_target.pt (pre-0.4.0): --branch target is one line, nothing written
    old = tmp_path / "old"
    (old / "pretrain").mkdir(parents=True)
    shutil.copytree(
        cache, old / "pretrain" / "bolt-seed0", ignore=shutil.ignore_patterns("backbone_target.pt")
    )
    target_only = [*branch_argv[: branch_argv.index("--branch")], "--branch", "target", "--probe-only"]
    _one_line_error(
        capsys, [*target_only, "--out", str(old), "--cells", "bolt-target/"], 1, "backbone_target.pt"
    )
    assert not (old / "records").is_dir() or not any((old / "records").iterdir())
    # no cached pre-training for this configuration: --probe-only refuses instead of training or deleting
    assert (
        main(
            [
                *argv[: argv.index("--epochs")],
                "--epochs",
                "3",
                "--probe-only",
                "--out",
                str(out),
                "--cells",
                "bolt/",
            ]
        )
        != 0
    )
    assert (out / "pretrain" / "bolt-seed0" / "backbone.pt").stat().st_mtime_ns == stamp
    assert (out / "pretrain" / "bolt-seed0" / "pretrain_metrics.json").is_file()


def test_reproduce_cells_key_the_encoder_and_scratch_mae_keep_their_single_one():
    from bolt_ssl.reproduce import method_cells

    shape = {"epochs": 2, "labels": [["k", 1]]}
    cells = method_cells(["scratch", "mae", "byol", "bolt"], [0, 1], shape, ["online", "target"])
    keys = [c.key for c in cells]
    assert len(set(keys)) == len(keys) == 12
    assert {k for k in keys if "target" in k} == {
        f"{m}-target/seed{s}" for m in ("byol", "bolt") for s in (0, 1)
    }
    for c in cells:
        assert c.params.get("branch", "online") == ("target" if "-target/" in c.key else "online")
        assert c.params["kind"] == "method" and c.params["epochs"] == 2
    # online only: the keys and params of records made before --branch existed (they stay reusable)
    online = method_cells(["scratch", "bolt"], [0], shape, ["online"])
    assert [(c.key, c.params) for c in online] == [
        ("scratch/seed0", {"kind": "method", "method": "scratch", "seed": 0, **shape}),
        ("bolt/seed0", {"kind": "method", "method": "bolt", "seed": 0, **shape}),
    ]
    # target only: scratch and MAE have no EMA target, they keep their one encoder (once)
    target = method_cells(["scratch", "mae", "bolt"], [0], shape, ["target"])
    assert [c.key for c in target] == ["scratch/seed0", "mae/seed0", "bolt-target/seed0"]


def test_reproduce_resume_reruns_cells_made_on_other_data(tmp_path, monkeypatch, npz_factory):
    """A resumed reproduce reuses a record only when it was made on the same dataset and file (settings)."""
    import bolt_ssl.reproduce as reproduce

    calls: list[str] = []

    def fake_floors(plan, labels, seed, protocol):
        calls.append(f"floors/{plan['dataset']}")
        return {"dataset": plan["dataset"]}

    def fake_downstream(init, name, plan, labels, seeds, *rest, **kwargs):
        calls.append(f"{name}/{plan['dataset']}")
        return {"dataset": plan["dataset"]}

    monkeypatch.setattr(reproduce, "_floors", fake_floors)
    monkeypatch.setattr(reproduce, "_downstream", fake_downstream)
    monkeypatch.setattr(reproduce, "summarize", lambda records: {})
    root = tmp_path / "data"
    npz_factory("data/retinamnist.npz", seed=0)
    npz_factory("data/breastmnist.npz", seed=0)
    out = tmp_path / "rep"
    argv = ["reproduce", "--quick", "--methods", "scratch", "--data.root", str(root), "--out", str(out)]
    record = out / "records" / "scratch_seed0.json"
    assert main([*argv, "--dataset", "retinamnist"]) == 0
    assert calls == ["floors/retinamnist", "scratch/retinamnist"]
    assert json.loads(record.read_text())["settings"]["dataset"] == "retinamnist"
    assert main([*argv, "--dataset", "retinamnist"]) == 0  # same data: every record reused
    assert len(calls) == 2
    assert main([*argv, "--dataset", "breastmnist"]) == 0  # same params, other dataset: re-run
    assert calls[2:] == ["floors/breastmnist", "scratch/breastmnist"]
    assert json.loads(record.read_text())["settings"]["dataset"] == "breastmnist"
    npz_factory("data/breastmnist.npz", seed=1)  # another file under the same name: re-run
    assert main([*argv, "--dataset", "breastmnist"]) == 0
    assert calls[4:] == ["floors/breastmnist", "scratch/breastmnist"]
