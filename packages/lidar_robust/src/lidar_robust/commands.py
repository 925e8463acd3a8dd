"""Small package verbs: ``generate``, ``list``."""

from __future__ import annotations

import argparse

from paperlab_core.errors import ConfigError
from paperlab_core.verbs import Run


def generate(args: argparse.Namespace, run: Run) -> dict:
    from lidar_robust.synthetic import SensorConfig, write_root

    sequences = [s.strip() for s in args.sequences.split(",") if s.strip()]
    if not sequences or not all(s.isdigit() for s in sequences):
        raise ConfigError(
            f"--sequences {args.sequences!r}: expected a comma list of numeric ids (e.g. 00,08)"
        )
    try:
        sensor = SensorConfig(beams=args.beams, azimuth=args.azimuth, range_noise=args.range_noise)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    root = write_root(
        run.dir, {f"{int(s):02d}": args.scans for s in sequences}, sensor, args.seed, progress=True
    )
    run.log(f"wrote {args.scans} scan(s) × {len(sequences)} sequence(s) to {root}/sequences")
    return {"root": str(root), "scans": args.scans * len(sequences)}


def list_registries(args: argparse.Namespace, run: Run) -> None:
    from lidar_robust.corruptions.registry import ROBO3D, SEMANTICKITTI_C
    from lidar_robust.models import MODEL_NAMES
    from lidar_robust.sparse import BACKENDS

    print("SemanticKITTI-C subsets:")
    for s in SEMANTICKITTI_C.values():
        print(f"  {s.name:20s} {s.corruption:8s} {s.level:9s} {s.params}")
    print("Robo3D corruptions:")
    for s in ROBO3D.values():
        print(f"  {s.name:28s} {s.params}")
    print(f"models: {', '.join(MODEL_NAMES)}")
    print(f"sparse backends: {', '.join(BACKENDS)}")
    print("metrics: mIoU (classes 1..19, ignore 0), RmIoU, mR (SemanticKITTI-C), mCE, mRR (Robo3D)")


def metrics(args: argparse.Namespace, run: Run) -> None:
    import csv

    from lidar_robust.benchmark import summarize_subsets
    from paperlab_core.errors import UserError

    rows: dict[str, float] = {}
    with open(args.csv, newline="", encoding="utf-8") as handle:
        for n, row in enumerate(csv.DictReader(handle), 2):
            try:
                rows[row["subset"].strip()] = float(row["miou"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{args.csv} line {n}: expected columns subset,miou with a number") from None
    for key, value in summarize_subsets(rows).items():
        print(f"{key:24s} {value:8.2f}" if isinstance(value, float) else f"{key:24s} {value}")


def fog_lut(args: argparse.Namespace, run: Run) -> dict:
    import time

    import numpy as np

    from lidar_robust.corruptions import fog

    try:
        alphas = tuple(float(a) for a in args.alphas) if args.alphas else fog.ALPHAS
    except ValueError:
        raise ConfigError(f"--alphas {args.alphas}: expected numbers") from None
    start = time.perf_counter()
    tables = fog.build_tables(alphas)
    elapsed = time.perf_counter() - start
    path = fog.save_tables(run.path("fog_lut.npz"), tables)
    shipped = fog.shipped_tables()
    same = alphas == fog.ALPHAS and all(np.array_equal(tables[k], shipped[k]) for k in shipped)
    run.log(
        f"fog-lut: {len(alphas)} table(s) in {elapsed:.2f} s → {path}; equal to the shipped tables: {same}"
    )
    return {
        "seconds": round(elapsed, 3),
        "per_alpha_s": round(elapsed / len(alphas), 3),
        "equal_to_shipped": same,
    }


def inspect(args: argparse.Namespace, run: Run) -> None:
    import numpy as np

    from lidar_robust.formats import CLASS_NAMES, count_unknown, learning_labels, read_scan
    from lidar_robust.rings import ring_ids, ring_statistics

    scan = read_scan(args.scan)
    ring = ring_ids(scan.points)
    stats = ring_statistics(scan.points, ring)
    depth = np.linalg.norm(scan.points[:, :3], axis=1)
    print(f"{args.scan}: {len(scan)} points")
    print(
        f"rings (file order): {stats['rings']}, points per ring {stats['points_per_ring_min']}–"
        f"{stats['points_per_ring_max']}, median elevation {stats['median_elevation_deg'][0]:+.2f}° … "
        f"{stats['median_elevation_deg'][-1]:+.2f}°, strictly decreasing: {stats['elevation_decreasing']}"
    )
    print(
        f"range {depth.min():.2f}–{depth.max():.2f} m (median {np.median(depth):.2f}); "
        f"intensity {scan.points[:, 3].min():.3f}–{scan.points[:, 3].max():.3f}"
    )
    if scan.labels is not None:
        learning = learning_labels(scan.labels)
        counts = np.bincount(learning, minlength=20)
        print(f"labels: {count_unknown(scan.labels)} unknown raw id(s) (mapped to 0)")
        for c in np.flatnonzero(counts):
            print(f"  {c:2d} {CLASS_NAMES[c]:14s} {counts[c]}")


def show(args: argparse.Namespace, run: Run) -> dict:
    from lidar_robust.corruptions.registry import ROBO3D, SEMANTICKITTI_C, apply
    from lidar_robust.formats import read_scan
    from lidar_robust.plots import bev_pair
    from lidar_robust.rings import ring_ids

    subsets = {**SEMANTICKITTI_C, **ROBO3D}
    if args.corruption not in subsets:
        raise ConfigError(
            f"--corruption {args.corruption!r}: unknown (expected a name from `lidar-robust list`)"
        )
    scan = read_scan(args.scan)
    scan.ring = ring_ids(scan.points)
    corrupted, _ = apply(subsets[args.corruption], scan, args.seed)
    path = bev_pair(
        scan,
        corrupted,
        run.path(f"bev_{args.corruption.replace('/', '_')}.png"),
        args.extent,
        f"{args.scan.name}: clean",
        f"{args.corruption}",
    )
    run.log(f"show: {path}")
    return {"png": str(path), "points_before": len(scan), "points_after": len(corrupted)}
