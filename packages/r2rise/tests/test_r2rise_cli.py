from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib import image
from r2rise import cli, reproduce
from r2rise.cli import main
from r2rise.data import DemosDataModule
from r2rise.explain import ExplainConfig, run_r2rise, save_run
from r2rise.masks import frame_weights, generate_masks


def test_cli_choice_tuples_equal_the_registries():
    """cli.py spells the choices out (it must not import torch); they must stay equal to the real registries."""
    from r2rise.explain import DTYPES, ESTIMATORS, EXPLAIN_LEARNERS
    from r2rise.learners import OBS_SCALINGS

    assert cli.LEARNER_CHOICES == EXPLAIN_LEARNERS
    assert cli.ESTIMATOR_CHOICES == ESTIMATORS
    assert cli.DTYPE_CHOICES == tuple(sorted(DTYPES))
    assert cli.OBS_SCALING_CHOICES == OBS_SCALINGS
    assert cli.STUDY_CHOICES == reproduce.STUDIES


def test_explain_outputs_equal_in_memory_maps(planted_demos, tmp_path):
    cfg = ExplainConfig(n_masks=24, steps=20, chunk=10)
    result = run_r2rise(planted_demos, cfg)
    info = save_run(result, planted_demos, tmp_path)
    with np.load(tmp_path / "maps.npz") as data:
        assert set(data.files) == set(result.maps)
        for key in data.files:
            np.testing.assert_array_equal(data[key], result.maps[key])
    for name in ("raw", "rise", "centred", "linear"):
        png = image.imread(tmp_path / f"heatmap_{name}.png")
        assert png.shape[0] > 50 and png.shape[1] > 50
    assert (tmp_path / "compressed_maps.csv").read_text().count("\n") == 21
    assert set(info["planted_auc"]) == {"raw", "rise", "centred", "linear"}
    np.testing.assert_array_equal(np.load(tmp_path / "returns.npy"), result.episode_returns)


def test_chunked_run_equals_single_chunk(planted_demos):
    a = run_r2rise(planted_demos, ExplainConfig(n_masks=6, steps=15, chunk=6))
    b = run_r2rise(planted_demos, ExplainConfig(n_masks=6, steps=15, chunk=4))
    np.testing.assert_array_equal(a.episode_returns, b.episode_returns)


def test_demos_explain_delete_compare_commands(tmp_path):
    made = tmp_path / "demos"
    assert main(["demos", "--num-demos", "2", "--length", "40", "--out", str(made)]) == 0
    assert json.loads((made / "metrics.json").read_text())["num_demos"] == 2
    out = tmp_path / "explain"
    argv = ["explain", "--demos", str(made), "--n-masks", "8", "--steps", "5", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n_masks"] == 8 and "planted_auc" in summary
    assert json.loads((out / "metrics.json").read_text())["planted_auc"] == summary["planted_auc"]
    deleted = tmp_path / "delete"
    argv = ["delete", "--run", str(out), "--fractions", "0.2", "--seeds", "0,1", "--paper-percentile", "0.6"]
    assert main([*argv, "--out", str(deleted)]) == 0
    table = json.loads((deleted / "deletion.json").read_text())
    assert [row["fraction"] for row in table["top"]] == [0.2]
    assert len(table["top"][0]["returns"]) == 2 and table["paper_percentile"]["seeds"] == [0, 1]
    assert (deleted / "deletion_curves.png").stat().st_size > 0
    assert main(["compare", "--run-a", str(out), "--run-b", str(out), "--out", str(tmp_path / "cmp")]) == 0
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["spearman"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demos", "--env", "Nope-v0"], "unknown env 'Nope-v0'"),
        (["demos", "--corrupt-frac", "1.5"], "corrupt_frac must be in [0, 1]"),
        (["explain", "--demos", "{tmp}/none.npz"], "demonstrations file {tmp}/none.npz does not exist"),
        (["explain", "--keep-p", "1.0"], "keep_p (probability of keeping a block) must be in (0, 1)"),
        (["delete", "--run", "{tmp}"], "maps.npz does not exist"),
        (["delete", "--run", "{tmp}/nope"], "folder {tmp}/nope does not exist"),
        (["reproduce", "--seeds", "x"], "expected seeds as a comma list"),
    ],
)
def test_user_errors_are_one_line_and_leave_no_run_folder(argv, message, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLAB_RUNS", str(runs))
    assert main([a.format(tmp=tmp_path) for a in argv]) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines[-1].startswith("r2rise: error: ") and message.format(tmp=tmp_path) in lines[-1], lines
    assert not any(line.startswith("Traceback") for line in lines)
    assert not list(runs.glob("r2rise/*")), "a failed verb left a run folder"


def test_reproduce_shards_and_merge_equal_a_whole_run(tmp_path, monkeypatch):
    """Two shards + --merge build exactly the tables of one whole run (a tiny grid: 2 seeds, N = 12, 2 retrainings
    per Q2/Q3 arm; figures are skipped, they are most of the cost), and the tables are made from the records
    alone."""
    from r2rise import plots

    monkeypatch.setattr(reproduce, "RETRAIN_SEEDS", 2)
    for name in ("heatmap", "compressed_bar", "returns_histogram", "deletion_curves", "scatter"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: None)
    common = ["reproduce", "--quick", "--seeds", "0,1", "--n-masks", "12"]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert main([*common, "--shard", "1/2", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--shard", "2/2", "--out", str(tmp_path / "b")]) == 0
    assert not (tmp_path / "a" / "results.json").exists()
    merged = ["reproduce", "--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]
    assert main(merged) == 0
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    merge = json.loads((tmp_path / "m" / "results.json").read_text())
    assert set(whole["tables"]) == {"main", "q2", "q3", "checks"}
    assert merge["tables"] == whole["tables"]
    assert merge["seeds"] == whole["seeds"] == [0, 1]
    assert [row[0] for row in whole["tables"]["main"]["rows"]] == [0, 1, "mean"]
    assert (tmp_path / "whole" / "seed1" / "maps.npz").is_file()


def test_datamodule_mask_matches_explain_mask():
    data = DemosDataModule(mask_keep_p=0.5, mask_index=3, mask_seed=1)
    data.setup("fit")
    demos = data.demonstrations
    expected = frame_weights(
        generate_masks(4, (demos.num_demos, demos.length), 0.5, 10, seed=1), demos.valid
    )[3]
    np.testing.assert_array_equal(data.train_set.batch[2].numpy(), expected)


def test_datamodule_reads_demos_under_its_root(tmp_path):
    from r2rise.demos import make_demos, save_demos

    from paperlab_core.errors import MissingFileError

    save_demos(make_demos("CartPole-v1", 2, 30, 0.1, 0.0, 10, 0), tmp_path / "run" / "demos.npz")
    data = DemosDataModule(demos="run", root=str(tmp_path))
    data.setup("fit")
    assert data.demonstrations.num_demos == 2
    with pytest.raises(MissingFileError, match="data root"):
        DemosDataModule(root=str(tmp_path / "missing"))


def test_train_then_evaluate_restores_the_env(tmp_path, monkeypatch):
    """`evaluate --ckpt` with no other flag evaluates on the env the checkpoint was trained on (Acrobot here)."""
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path))
    args = ["--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false"]
    assert main(["train", "--config", "acrobot", *args]) == 0
    (run,) = (tmp_path / "r2rise").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "val/return_mean" in metrics["fit"]
    assert main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt")]) == 0
    (evaluation,) = [p for p in (tmp_path / "r2rise").iterdir() if p != run]
    test = json.loads((evaluation / "metrics.json").read_text())["test"]
    assert test["test/return_mean"] < 0  # Acrobot's rewards are −1 per step; CartPole's would be positive


def test_minibatch_training_stops_early_and_keeps_the_best_parameters(tmp_path, monkeypatch):
    """The paper code's regime on CartPole: minibatches from 90 % of the frames, the summed validation
    cross-entropy on the other 10 % every few updates, stop after more than `patience` validations without
    improvement; the checkpoint holds the parameters of the best validation (its summed loss is the minimum logged)."""
    import csv

    import torch
    from r2rise.module import BCPolicyModule

    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path))
    args = ["train", "--data.batch_size", "8", "--data.updates_per_epoch", "3", "--data.val_fraction", "0.1"]
    args += ["--model.patience", "0", "--model.val_returns", "false", "--model.lr", "0.3"]
    args += ["--trainer.max_epochs", "40", "--trainer.check_val_every_n_epoch", "1"]
    assert main([*args, "--trainer.enable_progress_bar=false"]) == 0
    (run,) = (tmp_path / "r2rise").iterdir()
    fit = json.loads((run / "metrics.json").read_text())["fit"]
    assert "val/acc" in fit and "val/train_acc" not in fit and "val/return_mean" not in fit
    with (run / "metrics.csv").open() as handle:
        losses = [float(row["val/loss"]) for row in csv.DictReader(handle) if row.get("val/loss")]
    assert 2 <= len(losses) < 40, losses  # stopped at the first validation that did not improve
    assert losses[-1] >= min(losses[:-1])
    data = DemosDataModule(batch_size=8, updates_per_epoch=3, val_fraction=0.1)
    data.setup("fit")
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)[
        "state_dict"
    ]
    model = BCPolicyModule()
    model.load_state_dict(state)
    obs, actions, _ = data.eval_set.tensors
    with torch.no_grad():
        best = torch.nn.functional.cross_entropy(model(obs), actions, reduction="sum").item()
    assert best == pytest.approx(min(losses), rel=1e-5)
    assert len(data.eval_set) == round(0.1 * 1000)


def test_reproduce_studies_build_their_tables(tmp_path, monkeypatch):
    """`--study protocols` (2 scalings × 2 evaluation protocols, every estimator) and `--study families` (three
    learners on the same masks) at a tiny budget: the tables have one row per setting and `rise` ranks as `raw`."""
    from r2rise import bco

    monkeypatch.setattr(reproduce, "RETRAIN_SEEDS", 2)
    monkeypatch.setattr(bco, "EXPLORE_STEPS", 500)
    monkeypatch.setattr(bco, "IDM_STEPS", 20)
    common = ["reproduce", "--seeds", "0", "--n-masks", "12"]
    assert main([*common, "--study", "protocols", "--out", str(tmp_path / "p")]) == 0
    tables = json.loads((tmp_path / "p" / "results.json").read_text())["tables"]
    auc = {tuple(row[:3]): row[3] for row in tables["auc"]["rows"]}
    assert len(auc) == 2 * 2 * 4 and len(tables["q2"]["rows"]) == 2 * 2 * 3
    for scaling in ("env", "demos"):
        for protocol in ("4 greedy", "20, ε = 0.1"):
            assert auc[(scaling, protocol, "rise")] == auc[(scaling, protocol, "raw")]
    assert auc[("env", "4 greedy", "centred")] != auc[("demos", "4 greedy", "centred")]
    assert main([*common, "--study", "families", "--out", str(tmp_path / "f")]) == 0
    families = json.loads((tmp_path / "f" / "results.json").read_text())["tables"]["families"]
    assert [row[0] for row in families["rows"]] == [0, "mean"]
    row = dict(zip(families["columns"], families["rows"][0], strict=True))
    assert {"ρ bc_mlp vs iq_mlp", "ρ bc_mlp vs bco_mlp", "AUC bco_mlp"} <= set(row)
    assert all(value is not None for value in row.values()), row
