"""``lidar-robust corrupt ROOT OUT``: a SemanticKITTI-C-style tree (2DPASS layout) and/or the Robo3D layout from
any SemanticKITTI root (spec §2.8).

* 2DPASS: ``OUT/SemanticKITTI-C/<subset>/{velodyne,labels}/<frame>`` (16 subsets + ``clean_data``) — with
  ``OUT = ROOT``, 2DPASS's ``data_path.replace('sequences', 'SemanticKITTI-C')`` finds it unchanged;
  ``--layout sequences`` writes ``<subset>/sequences/<seq>/...`` for several sequences.
* Robo3D: ``OUT/<corruption>/<light|moderate|heavy>/{velodyne,labels}/<frame>``.

Every scan gets its own seed (independent of ``--workers``); everything is written under ``OUT/.staging-*`` and
moved into place only when all scans succeeded, so a failure leaves nothing half-written. ``manifest.json``
records the parameters, per-scan seeds and drawn values, point counts and the SHA-256 of every file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from lidar_robust import __version__
from lidar_robust.corruptions.registry import ROBO3D, SEMANTICKITTI_C, Subset, apply, registry, scan_seed
from lidar_robust.formats import read_scan, sequence_frames, write_bin, write_label
from lidar_robust.rings import ring_ids
from paperlab_core.errors import ConfigError, UserError
from paperlab_core.verbs import Run

CLEAN = "clean_data"


def _jobs(args: argparse.Namespace) -> list[tuple[str, str]]:
    names = ["semantickitti_c", "robo3d"] if args.registry == "both" else [args.registry]
    chosen = [(r, s) for r in names for s in registry(r)]
    if args.subsets:
        wanted = set(args.subsets)
        known = {s for _, s in chosen} | {CLEAN}
        unknown = sorted(wanted - known)
        if unknown:
            raise ConfigError(f"--subsets: unknown corruption subset(s) {unknown} (see `lidar-robust list`)")
        chosen = [(r, s) for r, s in chosen if s in wanted]
    return chosen


def _target(out: Path, registry_name: str, subset: str, sequence: str, layout: str) -> Path:
    if registry_name == "robo3d":
        return out / subset
    base = out / "SemanticKITTI-C" / subset
    return base / "sequences" / sequence if layout == "sequences" else base


def _load_clean(path: Path, label: Path | None):
    scan = read_scan(path, label)
    sidecar = path.parent.parent / "rings" / (path.stem + ".npy")
    scan.ring = np.load(sidecar) if sidecar.is_file() else ring_ids(scan.points)
    return scan


def _write(folder: Path, frame: str, points: np.ndarray, labels: np.ndarray | None) -> list[Path]:
    (folder / "velodyne").mkdir(parents=True, exist_ok=True)
    written = [folder / "velodyne" / f"{frame}.bin"]
    write_bin(written[0], points)
    if labels is not None:
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        written.append(folder / "labels" / f"{frame}.label")
        write_label(written[1], labels)
    return written


def _one(task: tuple) -> dict:
    """Corrupt one scan into one subset (runs in a worker)."""
    registry_name, subset_name, sequence, bin_path, label_path, staging, layout, seed, overrides = task
    scan = _load_clean(Path(bin_path), Path(label_path) if label_path else None)
    frame = Path(bin_path).stem
    folder = _target(Path(staging), registry_name, subset_name, sequence, layout)
    if subset_name == CLEAN:
        out, info, seed_words = scan, {}, None
    else:
        subset: Subset = registry(registry_name)[subset_name]
        ss = scan_seed(seed, registry_name, subset_name, sequence, int(frame) if frame.isdigit() else 0)
        out, info = apply(subset, scan, ss, **overrides.get(subset.corruption, {}))
        seed_words = [int(w) for w in ss.entropy]
    files = _write(folder, frame, out.points, out.labels)
    return {
        "registry": registry_name, "subset": subset_name, "sequence": sequence, "frame": frame,
        "seed": seed_words, "points_before": len(scan), "points_after": len(out), "info": _plain(info),
        "files": [str(f.relative_to(staging)) for f in files],
    }  # fmt: skip


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def corrupt(args: argparse.Namespace, run: Run) -> dict:
    root, out = Path(args.root), Path(run.dir)
    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()]
    frames = {seq: sequence_frames(root, seq) for seq in sequences}  # errors name the missing folder
    if args.layout == "2dpass" and len(sequences) > 1:
        raise ConfigError("the flat 2DPASS layout holds one sequence; pass --layout sequences for several")
    jobs = _jobs(args)
    if args.registry in ("semantickitti_c", "both") and (not args.subsets or CLEAN in args.subsets):
        jobs.append(("semantickitti_c", CLEAN))
    targets = {_target(out, r, s, seq, args.layout) for r, s in jobs for seq in sequences}
    existing = sorted(str(t) for t in targets if t.exists())
    if existing and not args.overwrite:
        raise UserError(
            f"{existing[0]} already exists (pass --overwrite to replace {len(existing)} folder(s))"
        )
    overrides = {"fog": {"knob": args.fog_knob}}
    if args.snow_target_power:
        overrides["snow"] = {"target_power": args.snow_target_power}
    snow_levels = {(s.params["rate"], s.params["terminal_velocity"]) for r, n in jobs if n != CLEAN
                   for s in [registry(r)[n]] if s.corruption == "snow"}  # fmt: skip
    if snow_levels:
        from lidar_robust.corruptions.snow import channel_particles

        for rate, velocity in sorted(snow_levels):  # particles once, in the parent (cached on disk)
            channel_particles(rate, velocity)
    staging = out / f".staging-{os.getpid()}"
    tasks = [(r, s, seq, str(b), str(lab) if lab else None, str(staging), args.layout, args.seed, overrides)
             for r, s in jobs for seq in sequences for b, lab in frames[seq]]  # fmt: skip
    run.log(f"corrupt: {len(tasks)} scan(s) × subsets with {args.workers} worker(s) → {out}")
    try:
        if args.workers > 1:
            with ProcessPoolExecutor(args.workers) as pool:
                records = list(pool.map(_one, tasks, chunksize=4))
        else:
            from paperlab_core.logging import track

            records = [_one(t) for t in track(tasks, description="corrupting")]
        for target in sorted(targets, key=str):
            staged = staging / target.relative_to(out)
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    checksums = {f: sha256(out / f) for rec in records for f in rec["files"]}
    summary = _summary(records)
    manifest = {
        "package": "lidar-robust", "version": __version__, "root": str(root), "layout": args.layout,
        "registry": args.registry, "sequences": sequences, "seed": args.seed, "fog_knob": args.fog_knob,
        "parameters": {f"{r}:{s}": _plain(registry(r)[s].params) for r, s in jobs if s != CLEAN},
        "summary": summary, "scans": records, "sha256": checksums,
    }  # fmt: skip
    run.write_json("manifest.json", manifest)
    for line in _summary_lines(summary):
        run.log(line)
    return {"scans_written": len(records), "subsets": len(jobs), "summary": summary}


def _summary(records: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for rec in records:
        key = f"{rec['registry']}:{rec['subset']}"
        entry = out.setdefault(
            key, {"scans": 0, "points_before": 0, "points_after": 0, "replaced": 0, "removed": 0}
        )
        entry["scans"] += 1
        entry["points_before"] += rec["points_before"]
        entry["points_after"] += rec["points_after"]
        entry["replaced"] += int(rec["info"].get("replaced", 0))
        entry["removed"] += int(rec["info"].get("removed", 0))
    for entry in out.values():
        before = max(entry["points_before"], 1)
        entry["kept_fraction"] = round(entry["points_after"] / before, 4)
        entry["replaced_fraction"] = round(entry["replaced"] / before, 4)
        entry["removed_fraction"] = round(entry["removed"] / before, 4)
    return out


def _summary_lines(summary: dict) -> list[str]:
    return [f"  {k:34s} points kept {v['kept_fraction']:.3f}  replaced {v['replaced_fraction']:.3f}  "
            f"removed {v['removed_fraction']:.3f}" for k, v in summary.items()]  # fmt: skip


def verify_manifest(out: str | Path) -> list[str]:
    """Files whose SHA-256 differs from ``manifest.json`` (empty when all agree)."""
    import json

    out = Path(out)
    manifest = json.loads((out / "manifest.json").read_text())
    return [f for f, digest in manifest["sha256"].items() if sha256(out / f) != digest]


__all__ = ["CLEAN", "ROBO3D", "SEMANTICKITTI_C", "corrupt", "verify_manifest"]
