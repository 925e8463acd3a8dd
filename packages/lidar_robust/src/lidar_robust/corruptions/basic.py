"""Measurement-noise and cross-device corruptions of SemanticKITTI-C (spec §2.4): global outliers, local
distortion, beam reduction (dense/sparse 32- and 16-beam)."""

from __future__ import annotations

import numpy as np

from lidar_robust.formats import Scan


def _with(scan: Scan, keep: np.ndarray | None = None, points: np.ndarray | None = None,
          labels: np.ndarray | None = None, ring: np.ndarray | None = None) -> Scan:  # fmt: skip
    """A new scan: ``keep`` selects points (array of indices or mask), or the arrays are replaced."""
    if keep is not None:
        return Scan(scan.points[keep], None if scan.labels is None else scan.labels[keep],
                    None if scan.ring is None else scan.ring[keep], scan.name)  # fmt: skip
    return Scan(
        scan.points if points is None else points,
        scan.labels if labels is None else labels,
        scan.ring if ring is None else ring,
        scan.name,
    )


def global_outliers(scan: Scan, rng: np.random.Generator, ratio: float) -> tuple[Scan, dict]:
    """Append ``round(ratio·N)`` points uniform in the scan's axis-aligned bounding box, intensity ~ U(0, 1),
    label 0, ring −1; the original points stay first and untouched."""
    n_new = int(round(ratio * len(scan)))
    low, high = scan.points[:, :3].min(0), scan.points[:, :3].max(0)
    xyz = rng.uniform(low, high, size=(n_new, 3))
    intensity = rng.uniform(0.0, 1.0, size=(n_new, 1))
    extra = np.concatenate([xyz, intensity], 1).astype(np.float32)
    points = np.concatenate([scan.points, extra])
    labels = None if scan.labels is None else np.concatenate([scan.labels, np.zeros(n_new, np.uint32)])
    ring = None if scan.ring is None else np.concatenate([scan.ring, np.full(n_new, -1, np.int64)])
    return _with(scan, points=points, labels=labels, ring=ring), {"added": n_new}


def local_distortion(
    scan: Scan, rng: np.random.Generator, sigma: float, fraction: float = 0.2
) -> tuple[Scan, dict]:
    """Move ``round(fraction·N)`` points (without replacement) by N(0, σ² I₃); labels unchanged."""
    n_move = int(round(fraction * len(scan)))
    index = rng.choice(len(scan), size=n_move, replace=False)
    points = scan.points.copy()
    points[index, :3] += rng.normal(0.0, sigma, size=(n_move, 3)).astype(np.float32)
    return _with(scan, points=points), {"moved": n_move}


def beam_reduction(scan: Scan, rng: np.random.Generator, keep_every: int, sparse: bool = False,
                   phase: int = 0) -> tuple[Scan, dict]:  # fmt: skip
    """Keep rings with ``ring mod keep_every == phase`` (ring ids of the clean scan); ``sparse`` then keeps every
    2nd point in scan order within each kept ring."""
    if scan.ring is None:
        raise ValueError("beam reduction needs the clean scan's ring ids (Scan.ring)")
    kept = (scan.ring >= 0) & (scan.ring % keep_every == phase)
    index = np.flatnonzero(kept)
    if sparse:
        ring = scan.ring[index]
        order = np.argsort(ring, kind="stable")
        sorted_ring = ring[order]
        starts = np.searchsorted(sorted_ring, sorted_ring, side="left")
        within = np.arange(len(order)) - starts  # position of each point inside its ring (scan order)
        index = np.sort(index[order[within % 2 == 0]])
    return _with(scan, keep=index), {"kept_rings": int(len(np.unique(scan.ring[index]))), "phase": phase}
