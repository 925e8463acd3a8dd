"""``sstam bench`` (spec §7): time the pipeline on an in-memory synthetic pan and print frames/s per stage.

No decoding is needed (the GPU machine has no PyAV); ``--video`` additionally encodes the pan with x264 and times
``score`` of that file from opening it to the result (decoding and bundle loading included, interpreter start-up
and imports excluded), which is the §7 CPU gate.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from paperlab_core.errors import ConfigError
from paperlab_core.results import Table, results_record
from paperlab_core.runtime import environment_line
from paperlab_core.verbs import Run

GATES = {"score_s": 10.0, "score_idle_s": 10.0, "saliency_fps": 100.0}


def bench_frames(width: int, height: int, frames: int) -> np.ndarray:
    """A pan over the astronaut still, upscaled when the frame is larger than the still allows."""
    from sstam.stills import load_still
    from sstam.synth import pan_clip

    still = load_still("astronaut")
    need = max(width, height) * 2
    if still.shape[0] < need:
        still = cv2.resize(still, (need, need), interpolation=cv2.INTER_CUBIC)
    square = pan_clip(still, max(width, height), frames)
    return np.ascontiguousarray(square[:, :height, :width])


def model_from_config(preset: str, device: torch.device, precision: str | None):
    """Detectors of a preset (random initialisation: timing does not depend on the weights)."""
    import yaml

    from paperlab_core.cli import resolve_config
    from sstam.config import PipelineConfig, SpatialConfig, TemporalConfig, pipeline_from_dict, to_dict
    from sstam.models import SpatialDetector, build_temporal
    from sstam.score import SSTAM, Engine

    def section(path: str) -> dict[str, Any]:
        return (yaml.safe_load(Path(path).read_text()) or {}).get("model", {})

    model: dict[str, Any] = section(resolve_config("default", "sstam"))
    if preset != "default":
        override = section(resolve_config(preset, "sstam"))
        for key, value in override.items():
            model[key] = {**model.get(key, {}), **value} if isinstance(value, dict) else value
    spatial = SpatialConfig(**model.get("spatial", {}))
    temporal = TemporalConfig(**model.get("temporal", {}))
    pipeline: PipelineConfig = pipeline_from_dict(model.get("pipeline", {}))
    engine = Engine(
        SpatialDetector(spatial.backbone, spatial.layout, inputs=spatial.inputs),
        build_temporal(to_dict(temporal)),
        pipeline,
        device,
        precision,
    )
    return SSTAM(engine, None, f"config:{preset}", {"config": {"spatial": to_dict(spatial)}})


def bench_saliency(frames: np.ndarray, patch: int = 64) -> dict[str, float]:
    """Saliency (static + motion + centre bias) and the patch weights, frames/s."""
    from sstam.grid import patch_grid, region_means
    from sstam.saliency import SaliencyModel

    model = SaliencyModel()
    corners = patch_grid(frames.shape[1], frames.shape[2], patch)
    model.frame(frames[0])
    model.reset()
    start = time.perf_counter()
    for frame in frames:
        region_means(model.frame(frame)[None], corners, patch)
    elapsed = time.perf_counter() - start
    return {"saliency_s": elapsed, "saliency_fps": len(frames) / elapsed}


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def bench(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Saliency alone, then the whole pipeline (warm-up pass first); wall and process CPU seconds per part."""
    import os

    width, height = args.size
    cv2.setNumThreads(int(args.threads or torch.get_num_threads()))
    device = run.device
    frames = bench_frames(width, height, args.frames)
    record: dict[str, Any] = {
        "size": f"{width}x{height}",
        "frames": args.frames,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "precision": args.precision or "32",
        "load_average_before": round(os.getloadavg()[0], 2),
    }
    wall, cpu = _clock()
    record.update(bench_saliency(frames))
    record["saliency_cpu_s"] = time.process_time() - cpu
    if args.only != "saliency":
        if args.ckpt == "none":
            model = model_from_config(args.config, device, args.precision)
        else:
            from sstam.score import SSTAM

            model = SSTAM.load(args.ckpt, device, args.precision)
        record["model"] = model.name
        engine = model.engine
        if args.only == "spatial":
            engine.temporal = None
        engine.analyze(frames[: max(2, engine.window + 1)])  # warm-up pass (allocations, kernels)
        wall, cpu = _clock()
        analysis = engine.analyze(frames)
        record["pipeline_s"] = time.perf_counter() - wall
        record["pipeline_cpu_s"] = time.process_time() - cpu
        for stage, seconds in analysis.timing.items():
            record[f"{stage}_s"] = seconds
        record["pipeline_fps"] = args.frames / record["pipeline_s"]
        if args.video and args.only is None:
            record.update(bench_video(frames, args))
    record["load_average_after"] = round(os.getloadavg()[0], 2)
    return record


def bench_video(frames: np.ndarray, args: argparse.Namespace) -> dict[str, float]:
    """x264-encode the pan, then time ``SSTAM.load`` + ``score_file`` (open → result)."""
    from sstam.codec import encode
    from sstam.score import SSTAM
    from sstam.video_io import rgb_to_yuv420p

    with tempfile.TemporaryDirectory(prefix="sstam-bench-") as folder:
        path = encode(rgb_to_yuv420p(frames), Path(folder) / "bench.mp4", "x264", 25.0, crf=28)
        wall, cpu = _clock()
        model = SSTAM.load(args.ckpt if args.ckpt != "none" else "default", "cpu")
        loaded = time.perf_counter() - wall
        result, _ = model.score_file(path)
        total, total_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "score_s": total,
        "score_cpu_s": total_cpu,
        "score_idle_s": total_cpu,
        "score_load_s": loaded,
        "score_decode_s": result.timing["decode"],
        "score_value": float(result.score) if result.score is not None else float("nan"),
    }


ROWS = (
    (
        "saliency (static + motion + centre bias + patch weights)",
        "saliency_s",
        "saliency_cpu_s",
        "saliency_fps",
    ),
    ("spatial detectors", "spatial_s", None, None),
    ("temporal detectors", "temporal_s", None, None),
    ("pipeline (in-memory frames)", "pipeline_s", "pipeline_cpu_s", "pipeline_fps"),
    ("score(x264 mp4): load + decode + pipeline + fusion", "score_s", "score_cpu_s", None),
    # the ceiling on a shared machine: the process CPU seconds of the same run bound the wall time on an idle
    # machine from above (all threads summed; an idle core runs them at least this fast)
    ("score(x264 mp4) on idle cores ≤ its process CPU s (ceiling)", "score_idle_s", None, None),
)


def bench_verb(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    if args.size[0] < 64 or args.size[1] < 64:
        raise ConfigError(f"--size {args.size[0]}x{args.size[1]}: both sides must be at least 64 px")
    record = bench(args, run)
    table = Table(
        ["stage", "wall s", "process CPU s", "frames/s", "gate", "pass"],
        formats={"wall s": ".2f", "process CPU s": ".2f", "frames/s": ".1f"},
        title=f"sstam bench {record['size']} × {record['frames']} frames, {record['threads']} threads, "
        f"{record['device']} (load average {record['load_average_before']})",
    )
    for name, key, cpu_key, fps_key in ROWS:
        if key not in record:
            continue
        fps = record.get(fps_key) if fps_key else record["frames"] / record[key] if record[key] > 0 else None
        gate_key = "saliency_fps" if key == "saliency_s" else key
        gate = GATES.get(gate_key)
        passed = None
        if gate is not None:
            value = record.get(gate_key)
            passed = "yes" if (value >= gate if gate_key.endswith("fps") else value <= gate) else "no"
        label = (
            None
            if gate is None
            else (f"≥ {gate:g} frames/s" if gate_key.endswith("fps") else f"≤ {gate:g} s")
        )
        table.add(name, record[key], record.get(cpu_key) if cpu_key else None, fps, label, passed)
    document = results_record(
        run.command, environment_line(run.env), None, {"main": table}, [record], package="sstam"
    )
    if run.dir is not None:
        run.write_json("results.json", document)
    if args.json:
        import json

        print(json.dumps(record, indent=2))
    else:
        print(table.to_markdown())
    return record
