from __future__ import annotations

import numpy as np
import pytest
from lidar_robust.corruptions import basic
from lidar_robust.corruptions.registry import SEMANTICKITTI_C, apply, scan_seed


@pytest.mark.parametrize("ratio", [0.001, 0.05, 0.5])
def test_global_outliers(synthetic_scan, rng, ratio):
    out, info = basic.global_outliers(synthetic_scan, rng, ratio)
    n = len(synthetic_scan)
    added = round(ratio * n)
    assert len(out) == n + added and info["added"] == added
    assert out.points[:n].tobytes() == synthetic_scan.points.tobytes()
    assert out.labels[:n].tobytes() == synthetic_scan.labels.tobytes()
    extra = out.points[n:]
    low, high = synthetic_scan.points[:, :3].min(0), synthetic_scan.points[:, :3].max(0)
    assert (extra[:, :3] >= low).all() and (extra[:, :3] <= high).all()
    assert (out.labels[n:] == 0).all() and (out.ring[n:] == -1).all()


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_local_distortion_moves_20_percent_with_sigma(synthetic_scan, rng, sigma):
    assert len(synthetic_scan) >= 40_000
    out, info = basic.local_distortion(synthetic_scan, rng, sigma)
    delta = out.points[:, :3].astype(np.float64) - synthetic_scan.points[:, :3]
    moved = np.abs(delta).max(1) > 0
    assert moved.sum() == round(0.2 * len(synthetic_scan)) == info["moved"]
    std = delta[moved].std(0)
    assert np.all(np.abs(std / sigma - 1) < 0.05), std
    assert np.array_equal(out.labels, synthetic_scan.labels)
    assert np.array_equal(out.points[:, 3], synthetic_scan.points[:, 3])


def test_beam_reduction_on_synthetic_scan(synthetic_scan, rng):
    n = len(synthetic_scan)
    dense32, _ = basic.beam_reduction(synthetic_scan, rng, 2)
    assert len(np.unique(dense32.ring)) == 32 and abs(len(dense32) / n - 0.5) < 0.02
    assert (dense32.ring % 2 == 0).all()
    dense16, _ = basic.beam_reduction(synthetic_scan, rng, 4)
    assert len(np.unique(dense16.ring)) == 16 and abs(len(dense16) / n - 0.25) < 0.02
    for dense, keep in ((dense32, 2), (dense16, 4)):
        sparse, _ = basic.beam_reduction(synthetic_scan, rng, keep, sparse=True)
        a = np.bincount(dense.ring, minlength=64)
        b = np.bincount(sparse.ring, minlength=64)
        assert np.all(np.abs(b - a / 2) <= 1)
        # every 2nd point in scan order within each kept ring, order preserved
        first_ring = dense.points[dense.ring == dense.ring[0]]
        assert np.array_equal(sparse.points[sparse.ring == dense.ring[0]], first_ring[::2])
    odd, info = basic.beam_reduction(synthetic_scan, rng, 2, phase=1)
    assert (odd.ring % 2 == 1).all() and info["phase"] == 1


@pytest.mark.data
def test_beam_reduction_fractions_on_real_scans(real_scans, rng):
    expected = {"dense_32beam": 0.502, "dense_16beam": 0.2525, "sparse_32beam": 0.251}
    for name, fraction in expected.items():
        for scan in real_scans:
            out, _ = apply(SEMANTICKITTI_C[name], scan, 0)
            assert abs(len(out) / len(scan) - fraction) <= 0.002 + (0.0005 if name == "dense_16beam" else 0)


def test_registry_seeds_are_per_scan_and_reproducible(small_scan):
    sub = SEMANTICKITTI_C["local_moderate"]
    a, _ = apply(sub, small_scan, scan_seed(0, "semantickitti_c", sub.name, "08", 3))
    b, _ = apply(sub, small_scan, scan_seed(0, "semantickitti_c", sub.name, "08", 3))
    c, _ = apply(sub, small_scan, scan_seed(0, "semantickitti_c", sub.name, "08", 4))
    assert a.points.tobytes() == b.points.tobytes() != c.points.tobytes()
