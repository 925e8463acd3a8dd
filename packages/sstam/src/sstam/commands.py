"""Package verbs: ``score`` (the user-facing tool), ``synth``, ``ladder``, ``fr`` and ``fit-fusion``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.verbs import Run
from sstam.synth import PEAS, SPATIAL_PEAS, TEMPORAL_PEAS


def _threads(args: argparse.Namespace) -> None:
    import cv2
    import torch

    cv2.setNumThreads(int(args.threads or torch.get_num_threads()))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def load_for_scoring(
    ckpt: str,
    device: Any,
    frame_stride: int | None = None,
    saliency: str | None = None,
    precision: str | None = None,
):
    from sstam.score import SSTAM

    model = SSTAM.load(ckpt, device, precision)
    pipeline = model.engine.pipeline
    if frame_stride is not None:
        pipeline.frame_stride = frame_stride
    if saliency == "none":
        pipeline.saliency.enabled = False
    elif saliency is not None:
        pipeline.saliency.enabled = True
        pipeline.saliency.static = saliency
    return model


def describe_model(model: Any) -> dict[str, Any]:
    from sstam import __version__

    engine = model.engine
    from sstam.models import SplitTemporalDetector

    temporal = engine.temporal.variant if engine.temporal is not None else None
    label = temporal + " (ours)" if temporal == "sstam_ours" else temporal
    if isinstance(engine.temporal, SplitTemporalDetector):  # ours, 0.6
        label += ", split: one model for flickering, one for floating"
    return {
        "bundle": model.meta.get("bundle", model.name),
        "spatial_backbone": model.meta.get("config", {}).get("spatial", {}).get("backbone"),
        "temporal_variant": label,
        "fusion": model.fusion.kind if model.fusion is not None else None,
        "version": __version__,
    }


def result_json(result: Any, info: Any, model: Any, per_frame: bool) -> dict[str, Any]:
    fusion = model.fusion
    document: dict[str, Any] = {
        "file": str(info.path),
        "container": info.container,
        "width": result.width,
        "height": result.height,
        "fps": result.fps,
        "frames": result.frames,
        "score": _finite(result.score),
        "score_scale": {
            "label_source": fusion.label_source if fusion else None,
            "higher_is_better": True,
            "label_range": fusion.label_range if fusion else None,
        },
        "intensities": {k: _finite(result.intensities[k]) for k in PEAS},
    }
    if per_frame:
        document["per_frame"] = {
            k: [_finite(float(v)) for v in result.per_frame[k]] for k in (*PEAS, "saliency_mean")
        }
    document["model"] = describe_model(model)
    document["warnings"] = list(result.warnings)
    document["timing_s"] = {k: round(float(v), 4) for k, v in result.timing.items()}
    return document


class HeatMaps:
    """Collects the heat-map PNGs in memory (written only when scoring succeeds)."""

    def __init__(self, stride: int, patch: int, cube: int) -> None:
        self.stride, self.patch, self.cube = stride, patch, cube
        self.files: dict[str, bytes] = {}

    def on_frame(
        self, t: int, frame: np.ndarray, saliency: np.ndarray, probs: np.ndarray | None, corners: np.ndarray
    ) -> None:
        from sstam.overlay import encode_png, jet_overlay, patch_map

        if t % self.stride:
            return
        self.files[f"frame_{t:05d}_saliency.png"] = encode_png(jet_overlay(frame, saliency))
        if probs is None:
            return
        for k, name in enumerate(SPATIAL_PEAS):
            heat, covered = patch_map(frame.shape[:2], corners, probs[:, k], self.patch)
            self.files[f"frame_{t:05d}_{name}.png"] = encode_png(jet_overlay(frame, heat, valid=covered))

    def on_window(self, start: int, frame: np.ndarray, probs: np.ndarray, corners: np.ndarray) -> None:
        from sstam.overlay import encode_png, jet_overlay, patch_map

        for k, name in enumerate(TEMPORAL_PEAS):
            heat, covered = patch_map(frame.shape[:2], corners, probs[:, k], self.cube)
            self.files[f"frame_{start:05d}_{name}.png"] = encode_png(jet_overlay(frame, heat, valid=covered))

    def write(self, folder: Path) -> None:
        from paperlab_core.logging import atomic_open

        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            with atomic_open(folder / name, "wb") as handle:
                handle.write(data)


def score(args: argparse.Namespace, run: Run) -> int:
    """``sstam score VIDEO``: print the SSTAM score and the six PEA intensities."""
    _threads(args)
    if (
        args.saliency_png is not None
        and Path(args.saliency_png).exists()
        and not Path(args.saliency_png).is_dir()
    ):
        from paperlab_core.errors import UsageError

        raise UsageError(f"--saliency-png {args.saliency_png} is a file (expected a folder)")
    import time

    from sstam.video_io import open_video

    start = time.perf_counter()
    source = open_video(
        args.video, args.size, args.fps, args.pix_fmt, args.max_frames
    )  # bad input fails here
    opened = time.perf_counter() - start
    model = load_for_scoring(args.ckpt, run.device, args.frame_stride, args.saliency)
    callbacks: dict[str, Any] = {}
    maps = None
    if args.saliency_png is not None:
        maps = HeatMaps(args.png_stride, model.engine.pipeline.patch, model.engine.cube)
        callbacks = {
            "on_frame": maps.on_frame,
            "on_window": maps.on_window if model.engine.temporal else None,
        }
    result = model.score_source(source, per_frame=args.per_frame, **callbacks)
    result.timing["decode"] += opened
    info = source.info
    for warning in result.warnings:
        print(f"sstam: warning: {warning}", file=sys.stderr)
    if maps is not None:
        maps.write(Path(args.saliency_png))
    if args.json:
        print(json.dumps(result_json(result, info, model, args.per_frame), indent=2))
        return 0
    if args.per_frame:
        columns = [*PEAS, "saliency_mean"]
        print("frame," + ",".join(columns))
        for t in range(result.frames):
            values = [result.per_frame[c][t] for c in columns]
            print(f"{t}," + ",".join("" if not np.isfinite(v) else f"{v:.5f}" for v in values))
        return 0
    print(text_report(result, info, model))
    return 0


def text_report(result: Any, info: Any, model: Any) -> str:
    fusion = model.fusion
    lines = [
        f"{info.path}: {info.container}, {result.width}x{result.height}, {result.fps:g} fps, "
        f"{result.frames} frames analysed"
    ]
    if result.score is not None and fusion is not None:
        lo, hi = fusion.label_range
        proxy = fusion.label_source.startswith("proxy")
        lines.append(
            f"SSTAM score: {result.score:.2f}  (higher is better; scale of {fusion.label_source}, "
            f"fitted on {lo:.1f}–{hi:.1f}" + ("; a proxy of quality, not human MOS)" if proxy else ")")
        )
    else:
        lines.append("SSTAM score: n/a (the model has no fitted fusion)")
    lines.append("PEA intensities (0 = none, 1 = every patch):")
    for name in PEAS:
        value = result.intensities[name]
        kind = "spatial" if name in SPATIAL_PEAS else "temporal"
        lines.append(f"  {name:<11s} {'null' if value is None else f'{value:.3f}'}  ({kind})")
    desc = describe_model(model)
    lines.append(
        f"model: {desc['bundle']} ({desc['spatial_backbone']} + {desc['temporal_variant']} + "
        f"{desc['fusion']}), sstam {desc['version']}"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- synth
def synth(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Synthetic per-artifact datasets in the PEA-folder layout (``<out>/<pea>/{positive,negative}/``) + meta.csv."""
    import csv

    import cv2

    from paperlab_core.logging import atomic_open
    from sstam.datasets import build_cube_set, build_patch_set
    from sstam.stills import HELDOUT_STILLS, TRAIN_STILLS, content_of

    out = run.dir
    rows: list[dict[str, Any]] = []
    split_of = {content_of(s): "train" for s in TRAIN_STILLS} | {
        content_of(s): "test" for s in HELDOUT_STILLS
    }
    spatial = [p for p in args.peas if p in SPATIAL_PEAS]
    temporal = [p for p in args.peas if p in TEMPORAL_PEAS]
    counts: dict[str, int] = {}
    for stills, tag in ((TRAIN_STILLS, "train"), (HELDOUT_STILLS, "test")):
        if spatial:
            data = build_patch_set(stills, args.n_per_level, args.patch, args.seed, peas=spatial)
            for i in range(len(data)):
                pea_index, level = int(data.pea[i]), int(data.level[i])
                targets = [SPATIAL_PEAS[pea_index]] if pea_index >= 0 else spatial
                if args.levels is not None and level not in args.levels and level != 0:
                    continue
                for pea in targets:
                    folder = "positive" if level > 0 else "negative"
                    rel = f"{pea}/{folder}/{data.content[i]}_{tag}_{pea}_l{level}_{i:05d}.png"
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(out / rel), cv2.cvtColor(data.patches[i], cv2.COLOR_RGB2BGR))
                    rows.append(
                        {
                            "path": rel,
                            "pea": pea,
                            "label": int(level > 0),
                            "severity": level,
                            "content": data.content[i],
                            "split": split_of.get(str(data.content[i]), tag),
                        }
                    )
                    counts[pea] = counts.get(pea, 0) + 1
        if temporal:
            cubes = build_cube_set(stills, max(1, args.n_per_level // 2), 8, args.patch, args.seed)
            for i in range(len(cubes)):
                for k, pea in enumerate(TEMPORAL_PEAS):
                    if pea not in temporal or cubes.labels[i, k] < 0:
                        continue
                    positive = cubes.labels[i, k] > 0
                    if not positive and not str(cubes.kind[i]).startswith(
                        ("constant", "floating_consistent", "clean", "blur")
                    ):
                        continue
                    rel = f"{pea}/{'positive' if positive else 'negative'}/{cubes.content[i]}_{tag}_{cubes.kind[i]}_{i:05d}.npy"
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    clip = cubes.cubes[i] if cubes.has_prev[i] else cubes.cubes[i, 1:]
                    np.save(out / rel, clip)
                    rows.append(
                        {
                            "path": rel,
                            "pea": pea,
                            "label": int(positive),
                            "severity": int(cubes.level[i]),
                            "content": cubes.content[i],
                            "split": split_of.get(str(cubes.content[i]), tag),
                        }
                    )
                    counts[pea] = counts.get(pea, 0) + 1
    with atomic_open(out / "meta.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "pea", "label", "severity", "content", "split"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"sstam synth: {len(rows)} items in {out} ({', '.join(f'{k} {v}' for k, v in counts.items())})")
    return {"items": len(rows), "per_pea": counts}


# --------------------------------------------------------------------------------------------- ladder, fr
def _source(
    spec: str, size: tuple[int, int] | None, fps: float | None, frames: int, pan: int
) -> tuple[list, float, str]:
    from sstam.video_io import read_frames, rgb_to_yuv420p

    if spec.startswith("still:"):
        from sstam.stills import load_still
        from sstam.synth import pan_clip

        name = spec.split(":", 1)[1]
        return rgb_to_yuv420p(pan_clip(load_still(name), pan, frames)), fps or 25.0, name
    path = Path(spec)
    if path.suffix.lower() == ".yuv":
        from sstam.video_io import open_video

        source = open_video(path, size, fps)
        w, h = source.info.width, source.info.height
        data = np.frombuffer(path.read_bytes(), np.uint8).reshape(-1, h * 3 // 2, w)
        return list(data[:frames] if frames else data), source.info.fps, path.stem
    array, info = read_frames(path, size=size, fps=fps, max_frames=frames or None)
    return rgb_to_yuv420p(array), info.fps, path.stem


def ladder(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Encode CRF/QP ladders (+ I-frame pumping pairs), compute VMAF/PSNR/SSIM, write ``ladder.csv``."""
    from sstam.codec import encode_ladder, pumping_pair, write_ladder_csv

    planes, fps, content = _source(args.src, args.size, args.fps, args.frames, args.pan_size)
    rows = encode_ladder(planes, run.dir, content, fps, args.codec, args.crf, args.qp, tuple(args.metrics))
    write_ladder_csv(run.dir / "ladder.csv", rows)
    for row in rows:
        print(
            f"{row['filename']:32s} {row['bytes']:>9d} B  "
            + "  ".join(f"{m} {row[m]:.3f}" for m in ("vmaf", "psnr", "ssim") if row.get(m) is not None)
        )
    out: dict[str, Any] = {"rows": rows}
    if args.pumping:
        pair = pumping_pair(planes, run.dir, content, fps)
        out["pumping"] = pair
        print(
            f"pumping: {pair['pumped']} (mean |ΔPSNR| {pair['pumped_psnr']['mean_abs_delta']:.2f} dB) vs "
            f"{pair['control']} (CRF {pair['control_crf']}, {pair['control_psnr']['mean_abs_delta']:.2f} dB)"
        )
    return out


def fr(args: argparse.Namespace, run: Run) -> int:
    """VMAF/PSNR/SSIM of DIST against REF; refuses pairs whose size or frame count differ."""
    from paperlab_core.errors import UserError
    from sstam.fr_metrics import full_reference
    from sstam.video_io import open_video

    infos = []
    for path, size in ((args.ref, args.ref_size), (args.dist, args.dist_size)):
        source = open_video(path, size, args.fps)
        count = sum(1 for _ in source)
        infos.append((source.info.width, source.info.height, count))
    if infos[0] != infos[1]:
        raise UserError(
            f"REF is {infos[0][0]}x{infos[0][1]} with {infos[0][2]} frames but DIST is "
            f"{infos[1][0]}x{infos[1][1]} with {infos[1][2]} frames (expected the same size and count)"
        )
    ref_options = {"size": args.ref_size, "fps": args.fps}
    dist_options = {"size": args.dist_size, "fps": args.fps}
    result = full_reference(args.ref, args.dist, tuple(args.metrics), ref_options, dist_options)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"frames {infos[0][2]} ({infos[0][0]}x{infos[0][1]}): "
            + "  ".join(f"{m.upper()} {result[m]:.4f}" for m in args.metrics)
        )
    return 0


# --------------------------------------------------------------------------------------------- fit-fusion
def fit_fusion_verb(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Refit the regressor on a MOS CSV with frozen detectors; content-disjoint CV; a new bundle."""
    from paperlab_core.logging import track
    from sstam.bundle import save_bundle
    from sstam.data import read_mos_csv
    from sstam.evaluate import fusion_cv
    from sstam.fusion import feature_matrix, fit_fusion
    from sstam.inputs import parse_size
    from sstam.score import SSTAM
    from sstam.video_io import open_video

    _threads(args)
    size = parse_size(args.data_size) if args.data_size else None
    items = read_mos_csv(args.data_mos_csv, args.data_video_root, args.data_content_regex, size)
    model = SSTAM.load(args.ckpt, run.device)
    rows = []
    for item in track(items, "scoring the database"):
        rows.append(
            model.engine.analyze(
                open_video(item.path, item.size, item.fps, item.pix_fmt), source=item.name
            ).intensities(model.engine.pipeline.agg)
        )
    x = feature_matrix(rows)
    labels = [i.label for i in items]
    groups = [i.content for i in items]
    cv = fusion_cv(x, labels, groups, args.fusion, args.features, args.data_score_direction, args.n_splits)
    fusion, sklearn_model = fit_fusion(
        x,
        labels,
        groups,
        args.fusion,
        args.features,
        args.data_score_direction,
        f"mos:{Path(args.data_mos_csv).name}",
        Path(args.data_mos_csv).name,
    )
    engine = model.engine
    config = {**model.meta.get("config", {})}
    provenance = {
        "command": run.command,
        "detectors_from": str(args.ckpt),
        "items": len(items),
        "cv": {k: v for k, v in cv.items() if isinstance(v, (int, float))},
    }
    save_bundle(
        run.dir / "bundle", engine.spatial, engine.temporal, config, fusion, provenance, sklearn_model
    )
    with_features = [
        {
            "filename": i.name,
            "mos": i.label,
            "content": i.content,
            **{k: _finite(float(v)) for k, v in zip(PEAS, row, strict=True)},
        }
        for i, row in zip(items, x, strict=True)
    ]
    run.write_json("features.json", with_features)
    print(
        f"fusion {args.fusion} ({args.features}) on {len(items)} videos, {cv['splits']} content-disjoint splits: "
        f"SROCC {cv['srocc']:.3f} [{cv['srocc_q25']:.3f}, {cv['srocc_q75']:.3f}], PLCC {cv['plcc']:.3f}, "
        f"RMSE {cv['rmse']:.3f}; new bundle {run.dir / 'bundle'}"
    )
    return {
        "cv": {k: _finite(v) for k, v in cv.items()},
        "bundle": str(run.dir / "bundle"),
        "items": len(items),
    }
