"""Package verbs without training: ``prepare``, ``validate``, ``preprocess``, ``generate`` and ``list``."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path
from typing import Any

from paperlab_core.errors import ConfigError, UserError
from paperlab_core.logging import log
from paperlab_core.verbs import Run


def _source(root: str | Path | None, layout: str, meb_fixes: bool) -> Any:
    from dfme.sources import DiskSource, SyntheticSource
    from dfme.synthetic import SyntheticConfig

    if root is None:
        if layout != "dfme":
            raise ConfigError(f"--layout {layout} needs a dataset root")
        return SyntheticSource(SyntheticConfig())
    options = {"meb_fixes": meb_fixes} if layout != "dfme" else {}
    return DiskSource(root, layout, **options)


def validate(args: argparse.Namespace, run: Run) -> dict:
    """``dfme validate --data.root DIR``: every format rule, then the summary."""
    from dfme.dataset import summarize_samples

    source = _source(args.data_root, args.layout, args.meb_fixes)
    summary = summarize_samples(source.samples)
    print(json.dumps(summary, indent=2))
    log(f"dfme validate: {summary['samples']} samples of {summary['subjects']} subjects pass every rule")
    return {"validate": summary}


def _pipeline(args: argparse.Namespace) -> Any:
    from dfme.face import DetectorConfig
    from dfme.pipeline import PipelineConfig

    return PipelineConfig(
        sampling=args.data_sampling, num_frames=args.data_num_frames, size=args.data_size, grayscale=args.grayscale,
        flow=args.data_flow, detector=DetectorConfig(detect_scale=0.5),
    )  # fmt: skip


def preprocess(args: argparse.Namespace, run: Run) -> dict:
    """Detection/alignment/TIM (and flow) for every sample, cached; reports align_status and TIM fallbacks."""
    from dfme.sources import process_source
    from paperlab_core.data import resolve_data_root

    root = getattr(args, "root", None) or getattr(args, "data_root", None)
    source = _source(root, args.layout, args.meb_fixes)
    cache = Path(args.cache_dir) if args.cache_dir else resolve_data_root(None, "dfme") / "cache"
    processed = process_source(source, _pipeline(args), cache)
    counts = processed.counts()
    log(f"dfme: align_status {counts['align_status']}; TIM fallbacks {counts['tim_fallback'] or 'none'}")
    log(f"dfme: cache entry {cache / f'processed-{processed.key}.npz'}")
    return {"preprocess": {"samples": len(source.samples), "cache_key": processed.key, **counts}}


def prepare(args: argparse.Namespace, run: Run) -> dict:
    """``dfme prepare ROOT``: validate, then preprocess and cache."""
    from dfme.dataset import summarize_samples

    if args.root is not None and not Path(args.root).is_dir():
        raise UserError(f"dataset root {args.root} does not exist (expected a folder with annotations.csv)")
    source = _source(args.root, args.layout, args.meb_fixes)
    summary = summarize_samples(source.samples)
    log(f"dfme prepare: {summary['samples']} samples of {summary['subjects']} subjects pass every rule")
    return {"validate": summary, **preprocess(args, run)}


def generate(args: argparse.Namespace, run: Run) -> dict:
    """``dfme generate --out DIR``: the synthetic benchmark in the DFME layout (+ ``meta.json``)."""
    import numpy as np

    from dfme.readers import write_frames, write_video
    from dfme.synthetic import SyntheticConfig, SyntheticDataset

    out = Path(args.out)
    if (out / "annotations.csv").exists():
        raise UserError(f"{out} already holds a dataset (annotations.csv); choose an empty --out folder")
    config = SyntheticConfig(subjects=args.subjects, seed=args.seed, fixed_frames=args.frames)
    dataset = SyntheticDataset.generate(config)
    rows = dataset.rows()
    count = len(rows) if args.limit is None else min(args.limit, len(rows))
    staging = out / ".partial"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / ("videos" if args.format == "mp4" else "frames")).mkdir(parents=True)
    step = max(1, count // 10)
    for index in range(count):
        frames = dataset.render(index)
        sample = rows[index]["sample_id"]
        if args.format == "npy":
            np.save(staging / "frames" / f"{sample}.npy", frames)
        elif args.format == "jpg":
            write_frames(frames, staging / "frames" / sample)
        else:
            write_video(frames, staging / "videos" / f"{sample}.mp4")
        if (index + 1) % step == 0 or index + 1 == count:
            log(f"dfme generate: {index + 1}/{count} clips")
    with open(staging / "annotations.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:count])
    (staging / "meta.json").write_text(json.dumps(dataset.meta(), indent=2, default=str), encoding="utf-8")
    for item in staging.iterdir():
        item.rename(out / item.name)
    staging.rmdir()
    report = dataset.report
    log(
        f"dfme generate: {count} clips of {report['kept']} subjects (detector kept {report['kept']} of {report['tried']} faces) → {out}"
    )
    return {
        "generate": {
            "clips": count,
            "subjects": report["kept"],
            "tried": report["tried"],
            "format": args.format,
        }
    }


def list_registries(args: argparse.Namespace, run: Run) -> None:
    """Models, sampling strategies, imbalance methods and metrics."""
    from dfme import cli

    print("models:              " + ", ".join(cli.MODEL_CHOICES))
    print("sampling strategies: " + ", ".join(cli.SAMPLING_CHOICES))
    print("imbalance methods:   " + ", ".join(cli.IMBALANCE_CHOICES))
    print("layouts:             " + ", ".join(cli.LAYOUT_CHOICES))
    print("flows:               " + ", ".join(cli.FLOW_CHOICES))
    print(
        "metrics:             uf1, uar, acc (concatenated over folds and per-fold mean); AU: macro_f1, micro_f1, per-AU F1"
    )
