"""``lidar-robust reproduce``: the key claim at CPU scale (spec §5).

Synthetic scans (seed 0): 64 training scans (sequence 00) and ``--val-scans`` validation scans (sequence 08)
corrupted into every SemanticKITTI-C subset with per-scan seeds. For every model × seed the MinkUNet-style
backbone (cr 0.25, 0.2 m voxels: the CPU scale) is trained for ``--steps`` AdamW steps (lr 2e-3, cosine, batch 2) through the
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

LABELS = {
    "minkunet": "MinkUNet-style baseline",
    "rlseg": "RLSeg-style (reconstruction)",
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


@lru_cache(maxsize=4)
def _clean_val(count: int, azimuth: int) -> tuple:
    from lidar_robust.synthetic import SensorConfig, generate_scan, scan_seed

    sensor = SensorConfig(azimuth=azimuth)
    return tuple(generate_scan(scan_seed(0, "08", i), sensor) for i in range(count))


@lru_cache(maxsize=32)
def _corrupted(subset: str, count: int, azimuth: int) -> list[dict]:
    """The synthetic SemanticKITTI-C subset (seed 0), built once per process and shared by every cell."""
    from lidar_robust.benchmark import corrupt_samples
    from lidar_robust.corruptions.registry import SEMANTICKITTI_C

    return corrupt_samples(_clean_val(count, azimuth), SEMANTICKITTI_C[subset], 0, "semantickitti_c")


def run_cell(cell: Cell, device: object, quick: bool) -> dict:
    import pytorch_lightning as pl
    import torch

    from lidar_robust.benchmark import evaluate_subsets, paper_columns
    from lidar_robust.corruptions.registry import SEMANTICKITTI_C
    from lidar_robust.data import LidarDataModule, sample_from_scan
    from lidar_robust.module import SegmentationModule

    p = cell.params
    pl.seed_everything(p["seed"], verbose=False)
    data = LidarDataModule(train_scans=TRAIN_SCANS, val_scans=2, azimuth=p["azimuth"], seed=0, batch_size=2)
    module = SegmentationModule(
        name=p["model"], cr=p["cr"], voxel_size=p["voxel_size"], augment_seed=p["seed"]
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
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
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


def summarize(records: list[dict]) -> dict:
    models = list(dict.fromkeys(r["params"]["model"] for r in records))
    by_model = {m: [r["result"] for r in records if r["params"]["model"] == m] for m in models}
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
    return tables


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
    unknown = [m for m in models if m not in LABELS]
    if unknown:
        raise ConfigError(f"--models: unknown {unknown} (expected items of {', '.join(LABELS)})")
    steps = args.steps or (30 if args.quick else 200)
    val_scans = args.val_scans or (4 if args.quick else 8)
    cells = [
        Cell(
            f"{model}/seed{seed}",
            {
                "model": model,
                "seed": seed,
                "steps": steps,
                "val_scans": val_scans,
                "cr": 0.25,
                "voxel_size": 0.2,
                "azimuth": 512,
            },
        )
        for model in models
        for seed in seeds
    ]
    return run_experiment(run, args, cells, lambda cell: run_cell(cell, run.device, args.quick), summarize)
