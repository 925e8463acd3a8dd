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
                                robust_until=0.75, robust_share=1.0)  # fmt: skip
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
    with pytest.raises(ValueError, match="robust_share"):
        SegmentationModule(name="rlseg", robust_share=-0.1)


def test_robust_share_sends_that_fraction_of_scans_into_the_robust_branch(small_scan):
    sample = sample_from_scan(small_scan.points, small_scan.labels, small_scan.ring)
    n = len(sample["points"])

    def halved(share: float, robust: tuple = ("point_subsample",), draws: int = 400) -> float:
        rng = np.random.default_rng(1)
        out = [augment_batch([sample], rng, robust, 1.0, share=share)[0] for _ in range(draws)]
        return float(np.mean([len(s["points"]) == n // 2 for s in out]))

    assert halved(1.0) == 1.0 and halved(0.0) == 0.0
    # binomial(400, 0.5): sd 0.025, so +-0.1 is 4 sd
    assert abs(halved(0.5) - 0.5) < 0.1
    # mix3d is part of the branch: a scan outside it is never mixed
    rng = np.random.default_rng(2)
    mixed = [augment_batch([sample, sample], rng, ("mix3d",), 1.0, share=0.0) for _ in range(20)]
    assert all(len(s["points"]) == n for pair in mixed for s in pair)
    # share = 1 draws nothing for the branch: the random stream is the spec recipe's
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    augment_batch([sample, sample], a, ROBUST_AUGMENTATIONS, 0.5, share=1.0)
    augment_batch([sample, sample], b, ROBUST_AUGMENTATIONS, 0.5, share=1.0)
    assert a.random() == b.random()


def test_reproduce_variants_build_modules_with_their_recipe_knobs():
    from lidar_robust.module import SegmentationModule
    from lidar_robust.reproduce import ABLATIONS, VARIANTS

    default = SegmentationModule(name="rlseg", cr=0.25, **VARIANTS["rlseg"][3])
    assert default.hparams.robust_share == 1.0 and default.outlier_ratio == (0.0, 0.05)  # the spec's proposal
    tried = SegmentationModule(name="rlseg", cr=0.25, **VARIANTS["rlseg-r0.2"][3])
    assert tried.hparams.robust_share == 0.5 and tried.outlier_ratio == (1e-3, 0.5)
    assert {"rlseg-half_scans", "rlseg-bench_outliers", "rlseg-no_mix3d"} <= set(ABLATIONS)


def test_coarse_cylinder_variant_is_no_finer_than_the_cartesian_grid_beyond_4m():
    import math

    from lidar_robust.module import SegmentationModule
    from lidar_robust.reproduce import VARIANTS

    name, _augment, voxelization, knobs = VARIANTS["rlseg-cyl_coarse"]
    module = SegmentationModule(name=name, cr=0.25, voxel_size=0.2, voxelization=voxelization, **knobs)
    _lower, size, shape = module.net.grid.layout()
    assert size[0] == pytest.approx(0.2) and size[2] == pytest.approx(0.2)
    assert math.degrees(size[1]) == pytest.approx(3.0)
    assert 3.82 * size[1] >= 0.2  # arc of one φ bin at 3.82 m (the lowest beam meets the ground near 3.7 m)
    assert shape == (256, 128, 32)  # padded to multiples of 16 for the four stride-2 levels
    default = SegmentationModule(name="rlseg", cr=0.25, voxel_size=0.2, voxelization="cylindrical")
    assert default.net.grid.cylinder_shape == (480, 360, 32)
    assert VARIANTS["minkunet-cylindrical"][:3] == ("minkunet", None, "cylindrical")
    with pytest.raises(ValueError, match="cylinder_shape"):
        SegmentationModule(name="rlseg", voxelization="cylindrical", cylinder_shape=(10, 0, 4))


def test_reproduce_tables_pair_ablations_by_seed_and_add_variant_claims():
    from lidar_robust.benchmark import paper_columns
    from lidar_robust.corruptions.registry import SEMANTICKITTI_C
    from lidar_robust.reproduce import summarize

    def record(variant: str, seed: int, value: float, **extra) -> dict:
        miou = {"clean": value, **dict.fromkeys(SEMANTICKITTI_C, value)}
        params = {"variant": variant, "seed": seed, **extra}
        return {"params": params, "result": {"miou": miou, "summary": paper_columns(miou)}}

    records = [record("minkunet", 0, 10.0), record("minkunet", 1, 10.0), record("rlseg", 0, 12.0),
               record("rlseg", 1, 14.0), record("rlseg-no_mix3d", 1, 15.0),
               record("rlseg-half_scans", 0, 11.0), record("rlseg-half_scans", 1, 11.0),
               # made while recipe 0.2 was the default: renamed, and compared with recipe 0.2 of the same seed
               record("rlseg", 0, 9.0, recipe="0.2"), record("rlseg-no_local_jitter", 0, 9.5, recipe="0.2"),
               record("rlseg-spec_outliers", 1, 13.0, recipe="0.2")]  # fmt: skip
    tables = summarize(records)
    rows = {row[0]: row for row in tables["ablations"].rows}
    # paired with rlseg's seed 1 (14), not with the first rlseg record (12)
    assert rows["rlseg-no_mix3d"][1:3] == ["rlseg", "1"] and rows["rlseg-no_mix3d"][3] == pytest.approx(1.0)
    # seeds 0, 1 and the legacy record's seed 1, each against rlseg of its own seed
    assert rows["rlseg-half_scans"][2] == "0,1,1"
    assert rows["rlseg-half_scans"][3] == pytest.approx(((11 - 12) + (11 - 14) + (13 - 14)) / 3)
    assert rows["rlseg-r0.2-no_local_jitter"][1] == "rlseg-r0.2"
    assert rows["rlseg-r0.2-no_local_jitter"][3] == pytest.approx(0.5)
    assert len(tables["ablations"].rows) == len(rows)
    # the legacy 0.2 "rlseg-spec_outliers" record joins rlseg-half_scans (same recipe) with seeds 0, 1, 1
    half = [r for r in records if r["params"]["variant"] in ("rlseg-half_scans", "rlseg-spec_outliers")]
    assert len(half) == 3 and "claim-rlseg-half_scans" in tables and "claim-rlseg-no_mix3d" not in tables
    claim = {row[0]: row for row in tables["claim-rlseg-half_scans"].rows}
    assert claim["clean mIoU drop ≤ 2"][3] == pytest.approx((11 + 11 + 13) / 3 - 10)
    # same-partition claim: rlseg-cylindrical against the cylindrical baseline, not against the cartesian one
    records += [record("minkunet-cylindrical", 0, 13.0), record("minkunet-cylindrical", 1, 13.0),
                record("rlseg-cylindrical", 0, 12.0), record("rlseg-cylindrical", 1, 12.5)]  # fmt: skip
    tables = summarize(records)
    pair = {row[0]: row for row in tables["claim-rlseg-cylindrical-vs-minkunet-cylindrical"].rows}
    assert pair["RmIoU higher"][1:4] == [pytest.approx(13.0), pytest.approx(12.25), pytest.approx(-0.75)]
    assert pair["RmIoU higher"][4] == "no"
    # the overview: one row per claim table, five differences and the count of checks met
    overview = {(row[0], row[1]): row for row in tables["claims"].rows}
    row = overview[("rlseg-cylindrical", "minkunet-cylindrical")]
    assert row[2] == "2/2" and row[3:8] == [pytest.approx(v) for v in (-0.75, 0.0, -0.75, -0.75, -0.75)]
    assert row[8] == "1 of 5"  # only the clean drop (-0.75 ≥ -2) passes; equal mR is not higher
    assert (
        overview[("rlseg", "minkunet")][3] == pytest.approx(3.0)
        and overview[("rlseg", "minkunet")][8] == "4 of 5"
    )


def test_criterion16_table_counts_seeds_in_the_expected_direction():
    from lidar_robust.benchmark import paper_columns
    from lidar_robust.corruptions.registry import SEMANTICKITTI_C
    from lidar_robust.reproduce import VARIANTS, summarize

    def record(variant: str, seed: int, local: float) -> dict:
        miou = {"clean": 10.0, **dict.fromkeys(SEMANTICKITTI_C, 10.0)}
        miou.update({f"local_{level}": local for level in ("light", "moderate", "heavy")})
        params = {"variant": variant, "seed": seed}
        return {"params": params, "result": {"miou": miou, "summary": paper_columns(miou)}}

    records = [record("rlseg", s, 12.0) for s in (0, 1, 2)]
    # no jitter: lower local distortion in seeds 0 and 2, higher in seed 1 → 2 of 3 in the expected direction
    records += [record("rlseg-no_local_jitter", 0, 11.0), record("rlseg-no_local_jitter", 1, 13.0),
                record("rlseg-no_local_jitter", 2, 11.5), record("rlseg-no_beam_drop", 0, 12.0),
                record("rlseg-cylindrical", 0, 11.0), record("rlseg-cylindrical", 1, 11.0)]  # fmt: skip
    rows = {row[0]: row for row in summarize(records)["criterion16"].rows}
    assert rows["local jitter"][2:] == [
        "local_miou",
        "lower",
        "0,1,2",
        "-1.00 / +1.00 / -0.50",
        "2 of 3",
        "yes",
    ]
    assert rows["beam drop"][4:] == ["0", "+0.00", "0 of 1", "too few seeds"]  # no change is not a move
    assert rows["cylindrical"][3] == "higher" and rows["cylindrical"][6:] == ["0 of 2", "no"]
    assert rows["mix3d"][4:7] == ["–", "–", "0 of 0"]
    assert VARIANTS["rlseg-clean_tail"][3] == {"robust_until": 0.75}


@pytest.mark.parametrize(("scale", "cr", "voxel_size"), [("cpu", 0.25, 0.2), ("spec", 0.5, 0.15)])
def test_reproduce_scale_sets_the_backbone_width_and_voxel_size_of_every_cell(
    monkeypatch, scale, cr, voxel_size
):
    import argparse

    from lidar_robust import reproduce as rep

    seen: list = []
    monkeypatch.setattr(rep, "run_experiment", lambda run, args, cells, fn, summarize: seen.extend(cells))
    args = argparse.Namespace(seeds=[0, 1], models="minkunet,rlseg", ablations=False, steps=5, quick=False,
                              val_scans=2, real_tiny=False, azimuth=64, scale=scale)  # fmt: skip
    rep.reproduce(args, run=None)
    assert [c.key for c in seen] == ["minkunet/seed0", "minkunet/seed1", "rlseg/seed0", "rlseg/seed1"]
    assert {(c.params["cr"], c.params["voxel_size"]) for c in seen} == {(cr, voxel_size)}


@pytest.mark.parametrize(
    ("scale", "quick", "steps"), [("cpu", False, 200), ("spec", False, 400), ("spec", True, 30)]
)
def test_reproduce_scale_sets_the_frozen_step_budget_unless_steps_is_given(monkeypatch, scale, quick, steps):
    import argparse

    from lidar_robust import reproduce as rep

    seen: list = []
    monkeypatch.setattr(rep, "run_experiment", lambda run, args, cells, fn, summarize: seen.extend(cells))
    for given, expected in ((None, steps), (7, 7)):
        seen.clear()
        args = argparse.Namespace(seeds=[0], models="minkunet", ablations=False, steps=given, quick=quick,
                                  val_scans=2, real_tiny=False, azimuth=64, scale=scale)  # fmt: skip
        rep.reproduce(args, run=None)
        assert [c.params["steps"] for c in seen] == [expected]
