from __future__ import annotations

import numpy as np
import pytest
from lidar_robust.corruptions import robo3d
from lidar_robust.formats import Scan, learning_labels


def test_motion_blur_statistics(synthetic_scan):
    out, info = robo3d.motion_blur(synthetic_scan, np.random.default_rng(0), 0.3)
    delta = out.points[:, :3].astype(np.float64) - synthetic_scan.points[:, :3]
    assert delta.mean(0) == pytest.approx(info["shift"], abs=0.005)
    assert delta.std(0) == pytest.approx([0.03, 0.03, 0.015], rel=0.05)


def test_crosstalk(synthetic_scan):
    out, info = robo3d.crosstalk(synthetic_scan, np.random.default_rng(0), 0.01)
    changed = np.any(out.points != synthetic_scan.points, axis=1)
    assert changed.sum() == int(0.01 * len(synthetic_scan)) == info["changed"]
    assert (out.labels[changed] == 23).all()
    assert np.all(out.points[changed] != synthetic_scan.points[changed])  # all four channels


def test_incomplete_echo(synthetic_scan):
    learning = learning_labels(synthetic_scan.labels)
    out, _info = robo3d.incomplete_echo(synthetic_scan, np.random.default_rng(0), 0.85)
    after = learning_labels(out.labels)
    for c in range(20):
        n = int((learning == c).sum())
        expected = n - int(0.85 * n) if c in robo3d.VEHICLE_CLASSES and n > 10 else n
        assert int((after == c).sum()) == expected
    assert (out.labels >> 16 == 0).all()


def test_beam_missing_draws_with_replacement(synthetic_scan):
    out, info = robo3d.beam_missing(synthetic_scan, np.random.default_rng(0), 48)
    dropped = info["dropped_beams"]
    assert len(dropped) < 48 and min(dropped) >= 4 and max(dropped) <= 58
    assert set(np.unique(out.ring)) == set(range(64)) - set(dropped)


@pytest.mark.data
def test_cross_sensor_fractions_on_real_scans(real_scans):
    assert len(robo3d.cross_sensor_ids(48)) == 48 == len(set(robo3d.cross_sensor_ids(48)))
    for scan in real_scans:
        for beams, fraction in ((16, 0.375), (32, 0.251), (48, 0.125)):
            out, _ = robo3d.cross_sensor(scan, np.random.default_rng(0), beams)
            assert abs(len(out) / len(scan) - fraction) <= 0.002


def _check_wet_ground(scan: Scan, level: tuple[float, float]) -> float:
    out, info = robo3d.wet_ground(scan, np.random.default_rng(0), *level)
    ground = np.isin(learning_labels(scan.labels), (9, 10, 11, 12))
    n_other = int((~ground).sum())
    assert out.points[:n_other].tobytes() == scan.points[~ground].tobytes()
    kept_ground = out.points[n_other:]
    assert len(kept_ground) == info["ground"] - info["removed"]
    original = {tuple(p[:3]): p[3] for p in scan.points[ground]}
    assert all(p[3] <= original[tuple(p[:3])] for p in kept_ground)
    return info["removed"] / max(info["ground"], 1)


def test_wet_ground_rules(synthetic_scan):
    fraction = _check_wet_ground(synthetic_scan, (1.2, 0.7))
    assert 0 <= fraction <= 1
    few = Scan(synthetic_scan.points[:500], synthetic_scan.labels[:500] * 0 + 40, synthetic_scan.ring[:500])
    same, info = robo3d.wet_ground(few, np.random.default_rng(0), 1.2, 0.7)
    assert same is few and info["removed"] == 0


@pytest.mark.data
def test_wet_ground_on_real_scans(real_scans, capsys):
    removed = {
        level: _check_wet_ground(real_scans[0], level) for level in ((0.2, 0.3), (1.0, 0.3), (1.2, 0.7))
    }
    with capsys.disabled():
        print(f"\nwet-ground removed fraction of ground points, scan 000000: {removed}")
