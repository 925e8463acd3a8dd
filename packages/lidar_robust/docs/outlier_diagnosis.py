"""Why the RLSeg-style recipe's outlier augmentation does not match the benchmark's global outliers.

Run: ``uv run python packages/lidar_robust/docs/outlier_diagnosis.py`` (seconds, no training). It measures, on the
4 validation scans of ``reproduce --val-scans 4 --azimuth 256``: where the benchmark's outliers land in the
MinkUNet-style grid (cr-independent: 0.2 m voxels, x/y in [-50, 50] m, z in [-4, 2] m, clamped at the border),
how many labelled points share a voxel with an outlier, how many occupied voxels the outliers add at the finest
and the coarsest (16x) level, and the outlier ratios the recipe draws (spec: U(0, 0.05); benchmark range:
log-uniform [0.001, 0.5]) and how far the full recipe (0.1: every scan in the robust branch; 0.2: half) moves a scan's point count
away from the clean scan's.
"""

from __future__ import annotations

import numpy as np
from lidar_robust.augment import (
    BENCHMARK_OUTLIER_RATIO,
    ROBUST_AUGMENTATIONS,
    SPEC_OUTLIER_RATIO,
    augment_batch,
)
from lidar_robust.corruptions.registry import SEMANTICKITTI_C, apply
from lidar_robust.corruptions.registry import scan_seed as corruption_seed
from lidar_robust.data import sample_from_scan
from lidar_robust.models.minkunet import GridConfig
from lidar_robust.synthetic import SensorConfig, generate_scan, scan_seed


def voxel_keys(
    xyz: np.ndarray, lower: np.ndarray, size: np.ndarray, shape: np.ndarray, stride: int
) -> np.ndarray:
    cells = np.floor((xyz - lower) / size).astype(np.int64)
    cells = np.minimum(np.maximum(cells, 0), shape - 1) // stride
    return (cells[:, 0] * shape[1] + cells[:, 1]) * shape[2] + cells[:, 2]


def main() -> None:
    lower, size, shape = (np.asarray(v) for v in GridConfig(voxel_size=0.2).layout())
    upper = lower + size * shape
    scans = [generate_scan(scan_seed(0, "08", i), SensorConfig(azimuth=256)) for i in range(4)]
    outside = np.mean(
        [np.any((s.points[:, :3] < lower) | (s.points[:, :3] >= upper), 1).mean() for s in scans]
    )
    print(f"clean scans: {len(scans[0])} points; real points outside the grid (clamped): {outside:.4f}")
    print(
        "level | outliers/scan | outside grid | labelled pts sharing a voxel | new voxels x1 | new voxels x16"
    )
    for name in ("global_light", "global_moderate", "global_heavy"):
        rows = []
        for frame, scan in enumerate(scans):
            corrupted, _ = apply(
                SEMANTICKITTI_C[name], scan, corruption_seed(0, "semantickitti_c", name, "08", frame)
            )
            n = len(scan)
            extra = corrupted.points[n:, :3]
            real = corrupted.points[:n, :3]
            out = np.any((extra < lower) | (extra >= upper), 1).mean() if len(extra) else 0.0
            shared = np.isin(
                voxel_keys(real, lower, size, shape, 1), voxel_keys(extra, lower, size, shape, 1)
            )
            new = []
            for stride in (1, 16):
                before = np.unique(voxel_keys(real, lower, size, shape, stride))
                after = np.unique(voxel_keys(corrupted.points[:, :3], lower, size, shape, stride))
                new.append(len(after) / len(before) - 1.0)
            rows.append((len(extra), out, shared[corrupted.labels[:n] > 0].mean(), *new))
        m = np.mean(rows, 0)
        print(f"{name} | {m[0]:.0f} | {m[1]:.3f} | {m[2]:.4f} | {m[3]:+.3f} | {m[4]:+.3f}")
    samples = [sample_from_scan(s.points, s.labels, s.ring) for s in scans[:2]]
    for label, bounds in (
        ("spec U(0, 0.05)", SPEC_OUTLIER_RATIO),
        ("log-uniform [0.001, 0.5]", BENCHMARK_OUTLIER_RATIO),
    ):
        rng = np.random.default_rng(0)
        ratios = np.array(
            [
                (x["ring"] < 0).sum() / max(1, (x["ring"] >= 0).sum())
                for _ in range(500)
                for x in augment_batch(samples, rng, ["global_outliers"], 0.5, bounds)
            ]
        )
        print(
            f"recipe outliers, {label}: ratio per training scan mean {ratios.mean():.4f}, max {ratios.max():.3f}, "
            f"share of scans with ratio >= 0.05: {(ratios >= 0.05).mean():.3f}, >= 0.25: {(ratios >= 0.25).mean():.3f}"
        )
    recipes = (("0.1 recipe", 1.0, SPEC_OUTLIER_RATIO), ("0.2 recipe", 0.5, BENCHMARK_OUTLIER_RATIO))
    for label, share, bounds in recipes:
        rng = np.random.default_rng(0)
        counts = np.array(
            [len(x["points"]) / len(samples[0]["points"]) for _ in range(500)
             for x in augment_batch(samples, rng, ROBUST_AUGMENTATIONS, 0.5, bounds, share)]
        )  # fmt: skip
        print(
            f"{label}: point count / clean scan, quantiles 10/25/50/75/90 %: "
            + " ".join(f"{q:.2f}" for q in np.quantile(counts, [0.1, 0.25, 0.5, 0.75, 0.9]))
            + f"; share within 5 % of the clean count: {(np.abs(counts - 1) < 0.05).mean():.3f}"
        )


if __name__ == "__main__":
    main()
