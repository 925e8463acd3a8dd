"""``lidar-robust reproduce``: the key claim at CPU scale (spec §5).

Synthetic scans (seed 0): 64 training scans (sequence 00) and ``--val-scans`` validation scans (sequence 08)
corrupted into every SemanticKITTI-C subset with per-scan seeds. For every model × seed the MinkUNet-style
backbone (cr 0.25, 0.2 m voxels: the CPU scale; ``--scale spec``: cr 0.5, 0.15 m) is trained for ``--steps`` AdamW steps (default: the scale's frozen budget, ``scales.py``) (lr 2e-3, cosine, batch 2) through the
same LightningModule as ``train``, then evaluated on clean + all subsets. The tables are built from the records
alone (``--shard``/``--merge``).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from functools import lru_cache

import numpy as np

from paperlab_core.errors import ConfigError
from paperlab_core.experiment import Cell, run_experiment
from paperlab_core.results import Table
from paperlab_core.verbs import Run

from .scales import QUICK_STEPS, SCALES

LABELS = {
    "minkunet": "MinkUNet-style baseline",
    "rlseg": "RLSeg-style (reconstruction)",
    "rlseg-half_scans": "RLSeg-style, half the scans augmented",
    "rlseg-r0.2": "RLSeg-style recipe 0.2 (tried)",
    "rlseg-clean_tail": "RLSeg-style, last quarter clean",
    "rlseg-cylindrical": "RLSeg-style, cylindrical voxels",
    "rlseg-cyl_coarse": "RLSeg-style, coarse cylindrical voxels",
    "minkunet-cylindrical": "MinkUNet-style, cylindrical voxels",
    "salsanext": "SalsaNext-style",
}
TYPE_LABELS = (
    ("fog", "Fog"),
    ("snow", "Snow"),
    ("global", "Global"),
    ("local", "Local"),
    ("32beam", "32-beam"),
    ("16beam", "16-beam"),
)
TRAIN_SCANS = 64
ROBUST = ("mix3d", "local_jitter", "global_outliers", "beam_drop", "point_subsample")
BENCHMARK_OUTLIERS = (1e-3, 0.5)
#: ρ ∈ [0, 50] m in 0.2 m, φ in 3°, z ∈ [−4, 2] m in 0.2 m
COARSE_CYLINDER = (250, 120, 30)
#: variant → (model name, augmentations (None = the model's recipe), voxelization, recipe knobs); ``rlseg`` is the
#: spec's proposed recipe (every scan through the robust branch, outlier ratio ~ U(0, 0.05))
VARIANTS: dict[str, tuple[str, list[str] | None, str, dict]] = {
    "minkunet": ("minkunet", None, "cartesian", {}),
    "rlseg": ("rlseg", None, "cartesian", {}),
    "salsanext": ("salsanext", None, "cartesian", {}),
    **{f"rlseg-no_{a}": ("rlseg", [b for b in ROBUST if b != a], "cartesian", {}) for a in ROBUST},
    "rlseg-cylindrical": ("rlseg", None, "cylindrical", {}),
    "rlseg-mix3d_cyl": ("rlseg", ["mix3d"], "cylindrical", {}),
    # the two changes tried for the global-outlier check (docs/lab-notebook.md), alone and together
    "rlseg-half_scans": ("rlseg", None, "cartesian", {"robust_share": 0.5}),
    "rlseg-bench_outliers": ("rlseg", None, "cartesian", {"outlier_ratio": BENCHMARK_OUTLIERS}),
    "rlseg-r0.2": ("rlseg", None, "cartesian", {"robust_share": 0.5, "outlier_ratio": BENCHMARK_OUTLIERS}),
    # robust augmentations off for the last quarter of the steps (clean fine-tuning at the cosine tail)
    "rlseg-clean_tail": ("rlseg", None, "cartesian", {"robust_until": 0.75}),
    # resolution controls of the cylindrical switch: a (ρ, φ, z) grid of 0.2 m × 3° × 0.2 m, no finer than the
    # 0.2 m cartesian grid beyond 3.8 m (where the points lie), and the baseline on the default cylindrical grid
    "rlseg-cyl_coarse": ("rlseg", None, "cylindrical", {"cylinder_shape": COARSE_CYLINDER}),
    "minkunet-cylindrical": ("minkunet", None, "cylindrical", {}),
}
#: (baseline, robust) variant pairs that get a claim table of their own (same voxel partition on both sides)
CLAIM_PAIRS = (("minkunet-cylindrical", "rlseg-cylindrical"),)
#: spec criterion 16: the variant that removes (or, for cylindrical, adds) a switch, the column it should move
#: and the expected sign of (variant − full recipe of the same seed); fixed from the spec before any run
CRITERION_16 = (
    ("mix3d", "rlseg-no_mix3d", "rmiou", -1),  # IJCV: Mix3D improves cross-condition robustness
    ("local jitter", "rlseg-no_local_jitter", "local_miou", -1),
    ("global outliers", "rlseg-no_global_outliers", "global_miou", -1),
    ("beam drop", "rlseg-no_beam_drop", "16beam_miou", -1),
    ("cylindrical", "rlseg-cylindrical", "rmiou", +1),  # IJCV: cylindrical voxels improve robustness
)
#: ``--ablations``: leave-one-out of the recipe (spec §5 criterion 16) and the tried changes
ABLATIONS = [v for v in VARIANTS if v.startswith("rlseg-")]
#: records made while recipe 0.2 was the default (params ``recipe: "0.2"``) under today's variant names
LEGACY_02 = {
    "rlseg": "rlseg-r0.2",
    "rlseg-spec_outliers": "rlseg-half_scans",
    "rlseg-all_scans": "rlseg-bench_outliers",
    "rlseg-spec": "rlseg",
}


@lru_cache(maxsize=4)
def _clean_val(count: int, azimuth: int) -> tuple:
    """Synthetic validation scans (sequence 08, seed 0); ``azimuth == 0`` = real scan 000002 of sequence 00."""
    if azimuth == 0:
        return tuple(_real_scans()[2:3])
    from lidar_robust.synthetic import SensorConfig, generate_scan, scan_seed

    sensor = SensorConfig(azimuth=azimuth)
    return tuple(generate_scan(scan_seed(0, "08", i), sensor) for i in range(count))


@lru_cache(maxsize=1)
def _real_scans() -> list:
    from lidar_robust.formats import read_scan, sequence_frames
    from lidar_robust.rings import ring_ids
    from paperlab_core.data import find_shared_data
    from paperlab_core.errors import MissingFileError

    shared = find_shared_data()
    if shared is None:
        raise MissingFileError(
            "shared data", "../shared/data/semantickitti", "--real-tiny needs the three real scans"
        )
    scans = []
    for bin_path, label_path in sequence_frames(shared / "semantickitti", "00")[:3]:
        scan = read_scan(bin_path, label_path)
        scan.ring = ring_ids(scan.points)
        scans.append(scan)
    return scans


@lru_cache(maxsize=64)
def _corrupted(subset: str, count: int, azimuth: int) -> list[dict]:
    """The SemanticKITTI-C subset (seed 0) of the validation scans, built once per process for every cell."""
    from lidar_robust.benchmark import corrupt_samples
    from lidar_robust.corruptions.registry import SEMANTICKITTI_C

    sequence = "00" if azimuth == 0 else "08"
    return corrupt_samples(
        _clean_val(count, azimuth), SEMANTICKITTI_C[subset], 0, "semantickitti_c", sequence
    )


def _list_datamodule(train: list[dict], val: list[dict]):
    """A LightningDataModule over fixed sample lists (the real-tiny protocol)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from lidar_robust.data import collate_list

    class ListData(pl.LightningDataModule):
        def train_dataloader(self) -> DataLoader:
            return DataLoader(train, batch_size=2, shuffle=True, collate_fn=collate_list)

        def val_dataloader(self) -> DataLoader:
            return DataLoader(val, batch_size=2, collate_fn=collate_list)

    return ListData()


def train_network(p: dict, device: object):
    """Train the cell's variant (params ``p``) as ``reproduce`` does; returns the Lightning module, trained."""
    import pytorch_lightning as pl

    from lidar_robust.data import LidarDataModule, sample_from_scan
    from lidar_robust.module import SegmentationModule

    pl.seed_everything(p["seed"], verbose=False)
    if p["data"] == "real":
        train = [sample_from_scan(s.points, s.labels, s.ring) for s in _real_scans()[:2]]
        data = _list_datamodule(train, train[:1])
    else:
        data = LidarDataModule(
            train_scans=TRAIN_SCANS, val_scans=2, azimuth=p["azimuth"], seed=0, batch_size=2
        )
    name, augment, voxelization, knobs = VARIANTS[p["variant"]]
    module = SegmentationModule(
        name=name,
        cr=p["cr"],
        voxel_size=p["voxel_size"],
        voxelization=voxelization,
        augment=augment,
        augment_seed=p["seed"],
        **knobs,
    )
    accelerator = "gpu" if getattr(device, "type", "cpu") == "cuda" else "cpu"
    trainer = pl.Trainer(
        max_steps=p["steps"],
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=sys.stderr.isatty(),
        limit_val_batches=0,
        num_sanity_val_steps=0,
        precision="bf16-mixed" if accelerator == "gpu" else "32-true",
    )
    trainer.fit(module, datamodule=data)
    return module


def run_cell(cell: Cell, device: object) -> dict:
    import torch

    from lidar_robust.benchmark import evaluate_subsets, paper_columns
    from lidar_robust.corruptions.registry import SEMANTICKITTI_C
    from lidar_robust.data import sample_from_scan

    p = cell.params
    start = time.perf_counter()
    module = train_network(p, device)
    train_s = time.perf_counter() - start
    net = module.net.to(device)
    scans = _clean_val(p["val_scans"], p["azimuth"])
    clean = [sample_from_scan(s.points, s.labels, s.ring) for s in scans]
    subsets = [
        (name, lambda name=name: _corrupted(name, p["val_scans"], p["azimuth"])) for name in SEMANTICKITTI_C
    ]
    start = time.perf_counter()
    per_subset = evaluate_subsets(
        net, clean, subsets, torch.device(device) if not isinstance(device, torch.device) else device
    )
    return {
        "miou": per_subset,
        "summary": paper_columns(per_subset),
        "train_s": round(train_s, 1),
        "eval_s": round(time.perf_counter() - start, 1),
    }


def _fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def _row_key(record: dict) -> str:
    p = record["params"]
    variant = p["variant"]
    if p.get("recipe") == "0.2":  # a leave-one-out of recipe 0.2 keeps its reference in the name
        variant = LEGACY_02.get(variant, variant.replace("rlseg-", "rlseg-r0.2-", 1))
    return variant + (" (real tiny)" if p.get("data") == "real" else "")


def _reference(variant: str) -> str:
    """The full recipe an ablation row is compared with."""
    return "rlseg-r0.2" if variant.startswith("rlseg-r0.2-") else "rlseg"


def summarize(records: list[dict]) -> dict:
    models = list(dict.fromkeys(_row_key(r) for r in records))
    by_model = {m: [r["result"] for r in records if _row_key(r) == m] for m in models}
    seeds = {m: [r["params"]["seed"] for r in records if _row_key(r) == m] for m in models}
    columns = ["Method", "Clean mIoU", "RmIoU", "mR"]
    for _key, label in TYPE_LABELS:
        columns += [f"{label} mIoU", f"{label} R"]
    main = Table(columns, title="Synthetic SemanticKITTI-C (mean ± std over seeds; mIoU %, R %)")
    subsets_all = sorted({k for r in records for k in r["result"]["miou"]})
    subsets_table = Table(["subset", *[LABELS.get(m, m) for m in models]], title="Per-subset mIoU (%)")
    for model, results in by_model.items():
        summaries = [r["summary"] for r in results if r["summary"]]
        row = [LABELS.get(model, model), _fmt([r["miou"]["clean"] for r in results])]
        for key in ("rmiou", "mr"):
            row.append(_fmt([s[key] for s in summaries]))
        for key, _label in TYPE_LABELS:
            row += [
                _fmt([s.get(f"{key}_miou") for s in summaries]),
                _fmt([s.get(f"{key}_r") for s in summaries]),
            ]
        main.add(*row)
    for subset in ["clean", *[s for s in subsets_all if s != "clean"]]:
        subsets_table.add(subset, *[_fmt([r["miou"].get(subset) for r in by_model[m]]) for m in models])
    tables = {"main": main, "subsets": subsets_table}
    if {"minkunet", "rlseg"} <= set(models):
        tables["claim"] = _claim(by_model["minkunet"], by_model["rlseg"])
    # other RLSeg-style variants with as many seeds as the baseline get their own claim table
    if "minkunet" in models:
        for variant in models:
            if variant.startswith("rlseg-") and len(by_model[variant]) >= max(2, len(by_model["minkunet"])):
                tables[f"claim-{variant}"] = _claim(by_model["minkunet"], by_model[variant])
    for base, robust in CLAIM_PAIRS:
        if base in by_model and robust in by_model and min(len(by_model[base]), len(by_model[robust])) >= 2:
            tables[f"claim-{robust}-vs-{base}"] = _claim(by_model[base], by_model[robust])
    claims = {k: t for k, t in tables.items() if k.startswith("claim")}
    if claims:
        tables["claims"] = _claims_overview(claims, {m: len(v) for m, v in by_model.items()})
    ablations = [
        m for m in models if (m in ABLATIONS or m.startswith("rlseg-r0.2-")) and _reference(m) in by_model
    ]
    if ablations:
        tables["ablations"] = _ablations(by_model, seeds, ablations)
    if "rlseg" in by_model and any(variant in by_model for _s, variant, _c, _e in CRITERION_16):
        tables["criterion16"] = _criterion16(by_model, seeds)
    return tables


def _claims_overview(claims: dict[str, Table], seeds: dict[str, int]) -> Table:
    """One row per claim table: the five §6.15 differences (RLSeg-style side − baseline side) and how many pass."""
    checks = ("rmiou", "mr", "clean", "local", "global")
    table = Table(
        ["RLSeg-style side", "baseline side", "seeds", *[f"Δ {c}" for c in checks], "checks met"],
        title="Spec §6.15 checks of every claim table (seed means; differences RLSeg-style side − baseline side)",
        formats={f"Δ {c}": "+.2f" for c in checks},
    )
    for key, claim in claims.items():
        robust, _, base = key.removeprefix("claim").removeprefix("-").partition("-vs-")
        robust, base = robust or "rlseg", base or "minkunet"
        diffs = [row[3] for row in claim.rows]
        met = sum(row[4] == "yes" for row in claim.rows)
        table.add(
            robust,
            base,
            f"{seeds.get(robust, 0)}/{seeds.get(base, 0)}",
            *diffs,
            f"{met} of {len(claim.rows)}",
        )
    return table


def _criterion16(by_model: dict[str, list[dict]], seeds: dict[str, list[int]]) -> Table:
    """Spec criterion 16 (report only): does each switch move its column in the expected direction, per seed?"""
    table = Table(
        [
            "switch",
            "variant",
            "column",
            "expected",
            "seeds",
            "per-seed difference",
            "in direction",
            "≥ 2 seeds",
        ],
        title="Criterion 16: variant − full RLSeg-style of the same seed, in the expected direction (report only)",
    )
    full = dict(zip(seeds["rlseg"], by_model["rlseg"], strict=True))
    for switch, variant, column, sign in CRITERION_16:
        mine = [
            (s, r)
            for s, r in zip(seeds.get(variant, []), by_model.get(variant, []), strict=True)
            if s in full
        ]
        diffs = [_value(r, column) - _value(full[s], column) for s, r in mine]
        hits = sum(1 for d in diffs if d * sign > 0)
        table.add(
            switch,
            variant,
            column,
            "higher" if sign > 0 else "lower",
            ",".join(str(s) for s, _ in mine) or "–",
            " / ".join(f"{d:+.2f}" for d in diffs) or "–",
            f"{hits} of {len(diffs)}",
            ("yes" if hits >= 2 else "no") if len(diffs) >= 2 else "too few seeds",
        )
    return table


def _value(result: dict, key: str) -> float:
    return result["summary"][key] if key in result["summary"] else result["miou"][key]


def _ablations(by_model: dict[str, list[dict]], seeds: dict[str, list[int]], variants: list[str]) -> Table:
    """Mean over shared seeds of (variant − full RLSeg-style recipe of the same seed), per column."""
    columns = ["clean", "rmiou", "mr", "global_miou", "local_miou", "32beam_miou", "16beam_miou"]
    table = Table(
        ["variant", "reference", "seeds", *columns],
        title="Ablations: variant − full RLSeg-style of the same seed (mean over seeds; report only)",
        formats=dict.fromkeys(columns, "+.2f"),
    )

    value = _value
    for variant in variants:
        reference = _reference(variant)
        full = dict(zip(seeds[reference], by_model[reference], strict=True))
        row = [variant, reference]
        mine = [(s, r) for s, r in zip(seeds[variant], by_model[variant], strict=True) if s in full]
        row.append(",".join(str(s) for s, _ in mine))
        for key in columns:
            pairs = [(value(r, key), value(full[s], key)) for s, r in mine]
            row.append(float(np.mean([a - b for a, b in pairs])) if pairs else None)
        table.add(*row)
    return table


def _claim(base: list[dict], robust: list[dict]) -> Table:
    """The acceptance checks of spec §6.15 on the seed means."""

    def mean(results: list[dict], key: str) -> float:
        values = [
            r["summary"][key] if key in r["summary"] else r["miou"][key] for r in results if r["summary"]
        ]
        return float(np.mean(values)) if values else float("nan")

    table = Table(
        ["check", "baseline", "RLSeg-style", "difference", "pass"],
        title="Claim checks (seed means)",
        formats={"baseline": ".2f", "RLSeg-style": ".2f", "difference": "+.2f"},
    )
    for label, key, rule in (
        ("RmIoU higher", "rmiou", lambda d: d > 0),
        ("mR higher", "mr", lambda d: d > 0),
        ("clean mIoU drop ≤ 2", "clean", lambda d: d >= -2.0),
        ("local distortion ≥ baseline", "local_miou", lambda d: d >= 0),
        ("global outliers ≥ baseline", "global_miou", lambda d: d >= 0),
    ):
        a, b = mean(base, key), mean(robust, key)
        table.add(label, a, b, b - a, "yes" if rule(b - a) else "no")
    return table


def reproduce(args: argparse.Namespace, run: Run) -> dict:
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in VARIANTS]
    if unknown:
        raise ConfigError(f"--models: unknown {unknown} (expected items of {', '.join(VARIANTS)})")
    if args.ablations:
        models += [v for v in ABLATIONS if v not in models]
    scale = SCALES[getattr(args, "scale", "cpu")]
    steps = args.steps or (QUICK_STEPS if args.quick else scale.steps)
    val_scans = args.val_scans or (4 if args.quick else 8)
    data = "real" if args.real_tiny else "synthetic"
    cr, voxel_size = scale.cr, scale.voxel_size
    common = {"steps": steps, "cr": cr, "voxel_size": voxel_size, "data": data}
    if data == "real":
        common.update(val_scans=1, azimuth=0)
    else:
        common.update(val_scans=val_scans, azimuth=args.azimuth)
    prefix = "real/" if data == "real" else ""
    cells = [
        Cell(
            f"{prefix}{model}/seed{seed}",
            {"variant": model, "model": VARIANTS[model][0], "seed": seed, **common},
        )
        for model in models
        for seed in seeds
    ]
    return run_experiment(run, args, cells, lambda cell: run_cell(cell, run.device), summarize)
