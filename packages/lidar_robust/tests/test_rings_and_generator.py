from __future__ import annotations

import numpy as np
import pytest
from lidar_robust.rings import ring_ids, ring_statistics
from lidar_robust.synthetic import RAW, SensorConfig, beam_elevations, generate_scan


def test_generated_elevations_equal_the_configured_beams(small_scan):
    xyz = small_scan.points[:, :3].astype(np.float64)
    elevation = np.arcsin(xyz[:, 2] / np.linalg.norm(xyz, axis=1))
    expected = np.radians(beam_elevations(64))[small_scan.ring]
    assert np.abs(elevation - expected).max() < 1e-6 * 10  # float32 storage of ~50 m coordinates
    assert len(np.unique(small_scan.ring)) == 64


def test_file_order_rings_reproduce_the_true_rings():
    for seed in range(4):
        scan = generate_scan(seed, SensorConfig(azimuth=512, range_noise=0.02))
        assert np.array_equal(ring_ids(scan.points), scan.ring)
    reversed_points = scan.points[::-1]
    assert len(np.unique(ring_ids(reversed_points))) == 1  # clockwise order recovers nothing


def test_generator_is_deterministic_and_uses_scene_classes():
    a, b = generate_scan(5), generate_scan(5)
    assert a.points.tobytes() == b.points.tobytes() and a.labels.tobytes() == b.labels.tobytes()
    assert generate_scan(6).points.tobytes() != a.points.tobytes()
    assert set(np.unique(a.labels & 0xFFFF).tolist()) <= set(RAW.values())
    assert (a.points[:, 3] >= 0).all() and (a.points[:, 3] <= 1).all()


def test_elevation_bin_channels_are_a_different_estimator(small_scan):
    bins = ring_ids(small_scan.points, "elevation_bins")
    assert bins.min() >= 0 and bins.max() <= 63
    assert not np.array_equal(bins, small_scan.ring)
    with pytest.raises(ValueError, match="unknown ring method"):
        ring_ids(small_scan.points, "nope")


@pytest.mark.data
def test_real_scans_have_64_rings_highest_first(real_scans):
    for scan in real_scans:
        stats = ring_statistics(scan.points, scan.ring)
        assert stats["rings"] == 64
        assert stats["elevation_decreasing"]
        assert stats["median_elevation_deg"][0] > 2.0 and stats["median_elevation_deg"][63] < -23.0
        assert stats["points_per_ring_min"] >= 1000
