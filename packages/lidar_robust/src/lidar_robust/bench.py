"""``lidar-robust bench``: the performance measurements of spec §7 → ``bench.json`` (+ ``results.json``).

Corruptions: the vectorised implementation against the per-point references of
:mod:`lidar_robust.corruptions.reference` on the real scans (median of ``--repeats``). The snow reference is
timed on a sample of points and scaled to the whole scan (its cost is linear in the points). Sparse
convolution: the torch backend's SubM 3³ forward and forward+backward on scan 000000 voxelised at 0.1 m
(16→16 and 32→32 channels); spconv's time and the ratio when spconv is importable. Every number is measured in
the same process with the machine's load average recorded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from paperlab_core.errors import MissingFileError
from paperlab_core.results import Table
from paperlab_core.verbs import Run

SNOW_SAMPLE = 120


def _median_time(func: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _scans(root: Path | None, count: int) -> list:
    from lidar_robust.formats import read_scan, sequence_frames
    from lidar_robust.rings import ring_ids
    from paperlab_core.data import find_shared_data

    if root is None:
        shared = find_shared_data()
        if shared is None:
            raise MissingFileError("SemanticKITTI sample", "../shared/data/semantickitti", "pass --root DIR")
        root = shared / "semantickitti"
    scans = []
    for bin_path, label_path in sequence_frames(root, "00")[:count]:
        scan = read_scan(bin_path, label_path)
        scan.ring = ring_ids(scan.points)
        scans.append(scan)
    return scans


def _cases(scan) -> dict:
    """(vectorised, reference, reference scale, point-wise?) per operation on one scan."""
    from lidar_robust.corruptions import basic, reference, robo3d, snow
    from lidar_robust.corruptions import fog as fog_model
    from lidar_robust.rings import elevation_channels, ring_ids

    rng = np.random.default_rng
    pts, labels, ring = scan.points, scan.labels, scan.ring
    channel = elevation_channels(pts)
    sample = np.random.default_rng(0).choice(len(pts), SNOW_SAMPLE, replace=False)
    particles = snow.channel_particles(2.5, 1.6)

    def snow_ref() -> None:
        sub = channel.copy()
        mask = np.zeros(len(pts), bool)
        mask[sample] = True
        sub[~mask] = -1
        reference.snow_loop(pts, sub, particles, tuple(range(64)))

    cases = {
        "fog (β 0.2, α 0.03)": (lambda: fog_model.fog_simulation(pts, 0.03, 0.2, rng(0)),
                                lambda: reference.fog_loop(pts, 0.03, 0.2, rng(0)), 1.0, True),
        "snow (heavy)": (lambda: snow.snowfall(scan, rng(0), 2.5, 1.6), snow_ref, len(pts) / SNOW_SAMPLE, True),
        "wet ground (heavy)": (lambda: robo3d.wet_ground(scan, rng(0), 1.2, 0.7),
                               lambda: reference.wet_ground_loop(pts, labels, 1.2, 0.7), 1.0, True),
        "incomplete echo (heavy)": (lambda: robo3d.incomplete_echo(scan, rng(0), 0.95),
                                    lambda: reference.incomplete_echo_loop(pts, labels, 0.95, rng(0)), 1.0, True),
        "beam missing (48)": (lambda: robo3d.beam_missing(scan, rng(0), 48),
                              lambda: reference.beam_delete_loop(pts, ring, rng(0).choice(np.arange(4, 59), 48)),
                              1.0, True),
        "cross-sensor (48)": (lambda: robo3d.cross_sensor(scan, rng(0), 48),
                              lambda: reference.beam_delete_loop(pts, ring, robo3d.cross_sensor_ids(48))[::2],
                              1.0, True),
        "ring ids (file order)": (lambda: ring_ids(pts), lambda: reference.ring_ids_loop(pts), 1.0, True),
        "SKC dense_16beam": (lambda: basic.beam_reduction(scan, rng(0), 4),
                             lambda: reference.beam_delete_loop(pts, ring, np.setdiff1d(np.arange(64), np.arange(0, 64, 4))),
                             1.0, True),
        "motion blur": (lambda: robo3d.motion_blur(scan, rng(0), 0.3),
                        lambda: _motion_blur_numpy(pts, labels, 0.3, rng(0)), 1.0, False),
        "crosstalk": (lambda: robo3d.crosstalk(scan, rng(0), 0.01),
                      lambda: _crosstalk_numpy(pts, labels, 0.01, rng(0)), 1.0, False),
        "global outliers (heavy)": (lambda: basic.global_outliers(scan, rng(0), 0.5),
                                    lambda: _global_numpy(pts, 0.5, rng(0)), 1.0, False),
        "local distortion (heavy)": (lambda: basic.local_distortion(scan, rng(0), 0.2),
                                     lambda: _local_numpy(pts, 0.2, rng(0)), 1.0, False),
    }  # fmt: skip
    return cases


def corruption_rows(scans: list, repeats: int) -> list[dict]:
    from lidar_robust.corruptions import snow

    rows = []
    snow.channel_particles(2.5, 1.6)  # particles are cached; their generation is reported separately
    for k, scan in enumerate(scans):
        cases = _cases(scan)
        for name, (ours, ref, scale, pointwise) in cases.items():
            t_ours = _median_time(ours, repeats)
            t_ref = _median_time(ref, 1 if pointwise else repeats) * scale
            rows.append({"scan": k, "operation": name, "vectorised_s": t_ours, "reference_s": t_ref,
                         "speedup": t_ref / t_ours, "gate": 5.0 if pointwise else 1 / 1.2})  # fmt: skip
    return rows


def _motion_blur_numpy(pts: np.ndarray, labels: np.ndarray, sigma: float, rng: np.random.Generator) -> tuple:
    """The official script's vectorised operations (points and the written labels)."""
    out = pts.copy()
    out[:, :3] += rng.normal(0, sigma, 3)
    noise = np.stack([rng.normal(0, 0.1 * sigma, len(pts)), rng.normal(0, 0.1 * sigma, len(pts)),
                      rng.normal(0, 0.05 * sigma, len(pts))], 1)  # fmt: skip
    out[:, :3] += np.clip(noise, -3 * sigma, 3 * sigma)
    return out, labels & 0xFFFF


def _crosstalk_numpy(pts: np.ndarray, labels: np.ndarray, ratio: float, rng: np.random.Generator) -> tuple:
    """The official script's vectorised operations (points and the written labels)."""
    out = pts.copy()
    index = rng.choice(len(pts), int(ratio * len(pts)), replace=False)
    out[index] += rng.normal(0, 1, (len(index), 4)) * 3.0
    written = labels & 0xFFFF
    written[index] = 23
    return out, written


def _global_numpy(pts: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    n = int(round(ratio * len(pts)))
    extra = np.concatenate(
        [rng.uniform(pts[:, :3].min(0), pts[:, :3].max(0), (n, 3)), rng.uniform(0, 1, (n, 1))], 1
    )
    return np.concatenate([pts, extra.astype(np.float32)])


def _local_numpy(pts: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    out = pts.copy()
    index = rng.choice(len(pts), int(round(0.2 * len(pts))), replace=False)
    out[index, :3] += rng.normal(0, sigma, (len(index), 3))
    return out


def sparse_rows(scan, repeats: int) -> list[dict]:
    import torch

    from lidar_robust.sparse import SubMConv3d, spconv_backend, voxelize

    pts = torch.from_numpy(scan.points)
    vox = voxelize(pts[:, :3], pts, torch.zeros(len(pts), dtype=torch.long), 1, (-50.0, -50.0, -4.0),
                   (0.1, 0.1, 0.1), (1000, 1000, 60))  # fmt: skip
    base = vox.tensor
    rows = []
    for channels in (16, 32):
        torch.manual_seed(0)
        feats = torch.randn(base.num_voxels, channels)
        for mode in ("forward", "forward+backward"):
            result = {"channels": channels, "mode": mode, "voxels": base.num_voxels}
            for backend in ("torch", "spconv"):
                if backend == "spconv" and not spconv_backend.available():
                    result["spconv_s"] = None
                    continue
                conv = SubMConv3d(channels, channels, 3, indice_key="bench", backend=backend)

                def step(
                    conv: SubMConv3d = conv, feats: torch.Tensor = feats, grad: bool = mode != "forward"
                ) -> None:
                    x = base.replace_feature(feats.clone().requires_grad_(grad))
                    x.indice_dict = {}
                    y = conv(x)
                    if grad:
                        y.feats.sum().backward()

                step()
                result[f"{backend}_s"] = _median_time(step, repeats)
            result["ratio"] = result["torch_s"] / result["spconv_s"] if result.get("spconv_s") else None
            rows.append(result)
    return rows


def bench(args: argparse.Namespace, run: Run) -> dict:
    from lidar_robust.corruptions import fog as fog_model

    scans = _scans(args.root, args.scans)
    out: dict = {"load_average": os.getloadavg(), "repeats": args.repeats, "scans": [len(s) for s in scans]}
    tables: dict[str, Table] = {}
    if args.what in ("corruptions", "all"):
        rows = corruption_rows(scans, args.repeats)
        out["corruptions"] = rows
        start = time.perf_counter()
        fog_model.build_lut(0.03)
        out["fog_lut_s_per_alpha"] = time.perf_counter() - start
        table = Table(["operation", "vectorised (s)", "reference (s)", "speed-up", "gate", "pass"],
                      formats={"vectorised (s)": ".4f", "reference (s)": ".3f", "speed-up": ".1f"},
                      title="Corruptions on the real scans (median over scans)")  # fmt: skip
        for name in dict.fromkeys(r["operation"] for r in rows):
            sel = [r for r in rows if r["operation"] == name]
            v, ref = (
                statistics.median(r["vectorised_s"] for r in sel),
                statistics.median(r["reference_s"] for r in sel),
            )
            gate = sel[0]["gate"]
            table.add(name, v, ref, ref / v, f"≥ {gate:.2f}×", "yes" if ref / v >= gate else "no")
        fog_s = statistics.median(r["vectorised_s"] for r in rows if r["operation"].startswith("fog"))
        out["fog_scan_s"] = fog_s
        table.add(
            "fog on a 124k-point scan (gate < 0.5 s)",
            fog_s,
            None,
            None,
            "< 0.5 s",
            "yes" if fog_s < 0.5 else "no",
        )
        tables["corruptions"] = table
    if args.what in ("sparse", "all"):
        rows = sparse_rows(scans[0], args.repeats)
        out["sparse"] = rows
        table = Table(["channels", "mode", "voxels", "torch (s)", "spconv (s)", "ratio (gate ≤ 3)"],
                      formats={"torch (s)": ".3f", "spconv (s)": ".3f", "ratio (gate ≤ 3)": ".2f"},
                      title="SubM 3³ on scan 000000 at 0.1 m, 1 thread")  # fmt: skip
        for r in rows:
            table.add(r["channels"], r["mode"], r["voxels"], r["torch_s"], r.get("spconv_s"), r.get("ratio"))
        tables["sparse"] = table
    run.write_json("bench.json", out)
    from paperlab_core.experiment import write_summary

    records = [{"key": "bench", "params": {}, "result": out}]
    write_summary(run, args, records, lambda _r: tables)
    return {k: v for k, v in out.items() if k in ("fog_scan_s", "fog_lut_s_per_alpha")}
