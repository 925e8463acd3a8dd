from __future__ import annotations

import math

import numpy as np
import pytest
from lidar_robust.corruptions import snow
from lidar_robust.corruptions.reference import snow_loop
from lidar_robust.rings import elevation_channels
from scipy import stats
from scipy.spatial import cKDTree


def test_published_constants_exactly():
    cases = {(0.5, 2.0): (2.2383844962893775, 6.944444444444445e-07),
             (1.0, 1.6): (8.847991609353935, 1.7361111111111108e-06),
             (2.5, 1.6): (34.97475775452152, 4.340277777777777e-06),
             (1.5, 1.6): (16.254798518508064, 2.604166666666666e-06)}  # fmt: skip
    for (rate, velocity), (rain, rho) in cases.items():
        assert snow.rain_rate(rate, velocity) == rain
        assert snow.occupancy(rate, velocity) == rho


def test_particle_sampler_area_overlap_origin():
    rain, rho = snow.rain_rate(2.5, 1.6), snow.occupancy(2.5, 1.6)
    centres, radii = snow.sample_particles(rain, rho, np.random.default_rng(0), r_disk=30.0)
    area = np.pi * (radii**2).sum()
    target = rho * np.pi * 30.0**2
    assert target <= area <= target + np.pi * radii.max() ** 2
    assert (np.linalg.norm(centres, axis=1) > radii).all()
    pairs = np.array(sorted(cKDTree(centres).query_pairs(0.02)))
    if len(pairs):
        gap = np.linalg.norm(centres[pairs[:, 0]] - centres[pairs[:, 1]], axis=1)
        assert (gap >= radii[pairs[:, 0]] + radii[pairs[:, 1]]).all()


def test_diameters_follow_the_truncated_exponential():
    lam = snow.diameter_rate(8.847991609353935)
    d = snow.draw_diameters(np.random.default_rng(0), 4000, lam)
    scale = 10.0 / lam  # mm
    cdf = lambda x: stats.expon.cdf(x, scale=scale) / stats.expon.cdf(snow.MAX_DIAMETER_MM, scale=scale)  # noqa: E731
    assert stats.kstest(d, cdf).pvalue > 0.01 and d.max() <= 20.0


@pytest.fixture(scope="module")
def small_fields(tmp_path_factory):
    """Particle fields in a 20 m disk (16× fewer flakes than the 80 m one: fast enough for unit tests)."""
    fields = {}
    for rate, velocity in ((0.5, 2.0), (1.5, 1.6), (2.5, 1.6)):
        rain, rho = snow.rain_rate(rate, velocity), snow.occupancy(rate, velocity)
        fields[rate] = [
            snow.sample_particles(rain, rho, np.random.default_rng(k), r_disk=20.0) for k in range(64)
        ]
    return fields


def test_snow_grows_with_rate_and_sits_near_the_sensor(small_scan, small_fields, monkeypatch):
    counts = []
    for rate, velocity in ((0.5, 2.0), (1.5, 1.6), (2.5, 1.6)):
        monkeypatch.setattr(snow, "channel_particles", lambda *a, rate=rate, **k: small_fields[rate])
        out, info = snow.snowfall(small_scan, np.random.default_rng(0), rate, velocity)
        assert np.isfinite(out.points).all()
        counts.append(info["replaced"])
        snow_points = out.labels == 0
        ranges = np.linalg.norm(out.points[:, :3], axis=1)
        assert np.median(ranges[snow_points]) < 0.5 * np.median(
            np.linalg.norm(small_scan.points[:, :3], axis=1)
        )
    assert counts[0] < counts[1] < counts[2]


@pytest.mark.parametrize("mode", ["official", "range_normalised"])
def test_vectorised_snow_equals_the_loop_on_four_channels(small_scan, small_fields, mode):
    channel = elevation_channels(small_scan.points)
    chosen = (20, 30, 45, 53)
    beams, d_max, i_new = snow.snow_returns(small_scan.points, channel, small_fields[2.5], mode)
    ref = snow_loop(small_scan.points, channel, small_fields[2.5], chosen, mode)
    ours = {int(b): (a, c) for b, a, c in zip(beams, d_max, i_new, strict=True) if channel[b] in chosen}
    assert set(ours) == set(ref) and len(ref) > 20
    for key, (dm, inew) in ref.items():
        assert ours[key][0] == pytest.approx(dm, abs=1e-9)
        assert abs(ours[key][1] - inew) <= 1  # truncation of a float sum taken in another order


def test_hand_built_beam():
    """One target at 20 m (intensity 0.5), flakes at 5 m (r = 2 mm) and 10 m (hidden behind the first)."""
    c = 30
    particles = [(np.zeros((0, 2)), np.zeros(0)) for _ in range(64)]
    particles[c] = (np.array([[5.0, 0.0], [10.0, 0.0005]]), np.array([0.002, 0.001]))
    elevation = np.radians(3.0 - (c + 0.5) / 64 * 28.0)
    point = np.array([[20 * math.cos(elevation), 0.0, 20 * math.sin(elevation), 0.5]], dtype=np.float32)
    d = float(np.linalg.norm(point[0, :3]))
    ratio_1 = 2 * math.asin(0.002 / 5.0) / snow.BEAM_WIDTH
    ratio_t = 1 - ratio_1
    bins = np.arange(snow.M_EXT)

    def pulse(r: float, amp: float) -> np.ndarray:
        inside = (bins >= math.ceil(10 * r)) & (bins <= math.floor(10 * (r + snow.C_TAU)))
        return np.where(inside, amp * np.sin(np.pi * (snow.RANGE_BINS - r) / snow.C_TAU) ** 2, 0.0)

    for mode, target_amp in (("official", 0.9 * 255 / d**2), ("range_normalised", 0.5 * 255)):
        power = pulse(5.0, 0.9 * 255 * ratio_1 / 25.0) + pulse(d, target_amp * ratio_t)
        k = int(power.argmax())
        beams, d_max, i_new = snow.snow_returns(point, np.array([c]), particles, mode)
        assert beams.tolist() == [0]
        assert d_max[0] == pytest.approx(k / 10 - snow.C_TAU / 2, abs=1e-9)
        assert i_new[0] == min(int(power[k]), 255)
        replaced = abs(d_max[0] - d) >= 0.2
        assert replaced == (mode == "official")
