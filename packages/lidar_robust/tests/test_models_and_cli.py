from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from lidar_robust import cli
from lidar_robust.augment import ROBUST_AUGMENTATIONS, augment_batch
from lidar_robust.cli import main
from lidar_robust.corruptions.registry import REGISTRIES
from lidar_robust.data import sample_from_scan
from lidar_robust.models.minkunet import GridConfig, MinkUNet
from lidar_robust.models.salsanext import SalsaNext
from lidar_robust.module import collate


def test_cli_choice_tuples_equal_the_registries():
    assert cli.REGISTRY_CHOICES == (*REGISTRIES, "both")


@pytest.mark.parametrize("voxelization", ["cartesian", "cylindrical"])
def test_minkunet_predicts_every_point_and_trains(small_scan, voxelization):
    torch.manual_seed(0)
    sample = sample_from_scan(small_scan.points, small_scan.labels, small_scan.ring)
    batch = collate([sample, sample])
    net = MinkUNet(cr=0.25, grid=GridConfig(voxelization=voxelization))
    start = time.perf_counter()
    logits = net(batch["points"], batch["batch"], batch["batch_size"])
    logits.logsumexp(1).mean().backward()
    assert time.perf_counter() - start < 20
    assert logits.shape == (len(batch["points"]), 20) and torch.isfinite(logits).all()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_salsanext_predicts_every_point(small_scan):
    sample = sample_from_scan(small_scan.points, small_scan.labels, small_scan.ring)
    batch = collate([sample])
    logits = SalsaNext(64, 512, cr=0.25)(batch["points"], batch["batch"], 1)
    assert logits.shape == (len(sample["points"]), 20)


def test_robust_augmentations_change_the_batch_as_described(small_scan):
    sample = sample_from_scan(small_scan.points, small_scan.labels, small_scan.ring)
    rng = np.random.default_rng(0)
    plain = augment_batch([sample, sample], rng, (), 0.5)
    assert [len(s["points"]) for s in plain] == [len(sample["points"])] * 2
    mixed = augment_batch([sample, sample], np.random.default_rng(0), ("mix3d",), 1.0)
    assert all(len(s["points"]) == 2 * len(sample["points"]) for s in mixed)
    dropped = augment_batch([sample], np.random.default_rng(3), ("point_subsample",), 1.0)[0]
    assert len(dropped["points"]) == len(sample["points"]) // 2
    noisy = augment_batch([sample], np.random.default_rng(0), ("global_outliers",), 1.0)[0]
    extra = len(noisy["points"]) - len(sample["points"])
    assert extra >= 0 and (noisy["labels"][len(sample["points"]) :] == 0).all()
    with pytest.raises(ValueError, match="unknown augmentations"):
        augment_batch([sample], rng, ("nope",))
    assert set(ROBUST_AUGMENTATIONS) == {
        "mix3d",
        "local_jitter",
        "global_outliers",
        "beam_drop",
        "point_subsample",
    }


def test_generate_verb_writes_a_semantickitti_root(tmp_path):
    out = tmp_path / "gen"
    assert main(["generate", "--scans", "2", "--azimuth", "64", "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "sequences" / "08" / "velodyne").iterdir()) == [
        "000000.bin",
        "000001.bin",
    ]
    assert json.loads((out / "meta.json").read_text())["sensor"]["azimuth"] == 64


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "--sequences", "x"], "expected a comma list of numeric ids"),
        (["reproduce", "--models", "nope"], "unknown ['nope']"),
    ],
)
def test_bad_verb_input_is_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lidar-robust: error: ") and message in err[-1]


def test_outlier_ratio_bounds_spec_uniform_and_benchmark_log_uniform():
    from lidar_robust.augment import BENCHMARK_OUTLIER_RATIO, SPEC_OUTLIER_RATIO, outlier_ratio

    rng = np.random.default_rng(0)
    spec = np.array([outlier_ratio(rng) for _ in range(4000)])
    assert SPEC_OUTLIER_RATIO == (0.0, 0.05) and spec.min() >= 0 and spec.max() <= 0.05
    # U(0, 0.05): mean 0.025, standard error 0.0144/sqrt(4000) = 2.3e-4 -> 5 sigma = 1.2e-3
    assert abs(spec.mean() - 0.025) < 1.2e-3
    bench = np.array([outlier_ratio(rng, BENCHMARK_OUTLIER_RATIO) for _ in range(4000)])
    assert bench.min() >= 1e-3 and bench.max() <= 0.5
    # log-uniform: log ratio is uniform, so each of the 3 decades-wide thirds holds 1/3 (binomial sd 0.0075)
    thirds = np.histogram(np.log(bench), bins=3, range=(np.log(1e-3), np.log(0.5)))[0] / len(bench)
    assert np.all(np.abs(thirds - 1 / 3) < 0.04)
    with pytest.raises(ValueError, match="0 <= low < high"):
        outlier_ratio(rng, (0.1, 0.05))


def test_robust_until_turns_the_robust_augmentations_off_for_the_last_steps(small_scan):
    from types import SimpleNamespace

    from lidar_robust.module import SegmentationModule

    sample = sample_from_scan(small_scan.points, small_scan.labels, small_scan.ring)
    module = SegmentationModule(name="rlseg", cr=0.25, augment=["point_subsample"], augment_probability=1.0,
                                robust_until=0.75)  # fmt: skip
    sizes = []
    for step in (0, 74, 75, 99):
        trainer = SimpleNamespace(training=True, estimated_stepping_batches=100, global_step=step)
        module._trainer = trainer  # what Lightning attaches during fit
        sizes.append(module.on_before_batch_transfer([sample], 0)["sizes"][0])
    n = len(sample["points"])
    assert sizes == [n // 2, n // 2, n, n]
    with pytest.raises(ValueError, match="robust_until"):
        SegmentationModule(name="rlseg", robust_until=1.5)
    with pytest.raises(ValueError, match="outlier_ratio"):
        SegmentationModule(name="rlseg", outlier_ratio=[0.5, 0.1])
