from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib import image
from r2rise.cli import main
from r2rise.data import DemosDataModule
from r2rise.explain import ExplainConfig, run_r2rise, save_run
from r2rise.masks import frame_weights, generate_masks


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


def test_demos_and_explain_commands(tmp_path):
    demos_file = tmp_path / "demos.npz"
    assert (
        main(
            ["demos", "--env", "CartPole-v1", "--num-demos", "2", "--length", "40", "--out", str(demos_file)]
        )
        == 0
    )
    out = tmp_path / "explain"
    argv = ["explain", "--demos", str(demos_file), "--n-masks", "8", "--steps", "5", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["n_masks"] == 8 and "planted_auc" in summary
    argv = ["delete", "--run", str(out), "--fractions", "0.2", "--seeds", "2", "--paper-percentile", "0.6"]
    assert main(argv) == 0
    table = json.loads((out / "deletion.json").read_text())
    assert [row["fraction"] for row in table["top"]] == [0.2]
    assert table["paper_percentile"]["seeds"] == 2
    assert (out / "deletion_curves.png").stat().st_size > 0
    assert main(["compare", "--run-a", str(out), "--run-b", str(out), "--out", str(tmp_path / "cmp")]) == 0
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["spearman"] == pytest.approx(1.0)


def test_demos_command_unknown_env(tmp_path):
    with pytest.raises(ValueError, match="unknown env 'Nope-v0'"):
        main(["demos", "--env", "Nope-v0", "--out", str(tmp_path / "x.npz")])


def test_datamodule_mask_matches_explain_mask():
    data = DemosDataModule(mask_keep_p=0.5, mask_index=3, mask_seed=1)
    data.setup("fit")
    demos = data.demonstrations
    expected = frame_weights(
        generate_masks(4, (demos.num_demos, demos.length), 0.5, 10, seed=1), demos.valid
    )[3]
    np.testing.assert_array_equal(data.train_set.batch[2].numpy(), expected)


def test_train_fast_dev_run_writes_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path))
    assert main(["train", "--trainer.fast_dev_run=true", "--trainer.enable_progress_bar=false"]) == 0
    metrics = json.loads(next(tmp_path.glob("r2rise/*/metrics.json")).read_text())
    assert "val/return_mean" in metrics["fit"]
