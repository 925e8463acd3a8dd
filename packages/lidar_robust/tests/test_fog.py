from __future__ import annotations

import math

import numpy as np
import pytest
from lidar_robust.corruptions import fog
from lidar_robust.corruptions.reference import fog_loop
from scipy.integrate import quad
from scipy.optimize import brentq

R_STAR_CASES = [(0.0, 0.2), (0.0, 0.06), (0.005, 0.05), (0.02, 0.008), (0.06, 0.005), (0.03, 0.2)]


def _quad_power(r: float, alpha: float) -> float:
    upper = 2 * fog.TAU_H
    knots = [max(0.0, min(upper, 2 * (r - x) / fog.C_LIGHT)) for x in (0.9, 1.0)]
    value, _ = quad(lambda t: float(fog.soft_integrand(np.array(t), np.array(r), alpha)), 0.0, upper,
                    points=sorted(set(knots)), epsabs=0, epsrel=1e-10, limit=200)  # fmt: skip
    return value


def test_peak_values_of_the_response_curve():
    expected = {0.0: (4.7024, 4.64465e-9), 0.005: (4.7024, 4.56800e-9), 0.01: (4.7024, 4.49278e-9),
                0.02: (4.7024, 4.34657e-9), 0.03: (4.7024, 4.20578e-9), 0.06: (4.6023, 3.81569e-9)}  # fmt: skip
    for alpha, (r_peak, i_peak) in expected.items():
        r, p = fog.response_curve(alpha)
        assert r[p.argmax()] == pytest.approx(r_peak, abs=1e-4)
        assert p.max() == pytest.approx(i_peak, rel=1e-3)
    r_fog, i_fog = fog.build_lut(0.0)
    assert r_fog[20] == pytest.approx(1.9010, abs=1e-4) and i_fog[20] == pytest.approx(3.7810e-10, rel=1e-3)


def test_lut_against_quad_monotone_and_shipped():
    shipped = fog.shipped_tables()
    for k, alpha in enumerate(fog.ALPHAS):
        r_fog, i_fog = fog.build_lut(alpha)
        assert np.array_equal(r_fog, shipped[f"r_fog_{k}"]) and np.array_equal(i_fog, shipped[f"i_fog_{k}"])
        assert np.all(np.diff(i_fog) >= 0)
    r_fog, i_fog = fog.build_lut(0.02)
    for r0 in (1.5, 2.0, 3.0, 4.0, 4.5, 6.0, 10.0, 25.0, 80.0, 150.0):
        index = int(round(r0 * 10))
        assert _quad_power(r_fog[index], 0.02) == pytest.approx(i_fog[index], rel=1e-3)


def test_no_fog_without_scattering(small_scan):
    _, replaced = fog.fog_simulation(small_scan.points, 0.0, 1e-12, np.random.default_rng(0))
    assert not replaced.any()


def test_fog_rules_on_synthetic_scan(small_scan):
    pts = small_scan.points
    fractions = []
    for beta in (0.005, 0.06, 0.2):
        out, replaced = fog.fog_simulation(pts, 0.01, beta, np.random.default_rng(0))
        fractions.append(replaced.mean())
        r0 = np.linalg.norm(pts[:, :3], axis=1)
        kept = ~replaced
        expected = (np.exp(-2.0 * 0.01 * r0[kept].astype(np.float64)) * pts[kept, 3]).astype(np.float32)
        assert np.array_equal(out[kept, 3], expected)
        far = replaced & (r0 > 10.5)
        cosine = (out[far, :3] * pts[far, :3]).sum(1) / np.linalg.norm(out[far, :3], axis=1) / r0[far]
        assert (cosine > 0.9999).all()
        _scaled, replaced_scaled = fog.fog_simulation(pts * np.array([1, 1, 1, 3.7], np.float32), 0.01, beta,
                                                     np.random.default_rng(0))  # fmt: skip
        assert np.array_equal(replaced, replaced_scaled)
    assert fractions[0] < fractions[1] < fractions[2]


def _r_star(alpha: float, beta: float) -> float:
    plateau = fog.lut(alpha)[1][-1]
    return brentq(lambda r: plateau * r**2 * beta / fog.BETA_0 - math.exp(-2 * alpha * r), 4.8, 500.0)


@pytest.mark.data
def test_replace_rule_on_real_scans(real_scans):
    assert _r_star(0.0, 0.2) == pytest.approx(18.52, abs=0.01)
    assert _r_star(0.06, 0.005) == pytest.approx(26.44, abs=0.01)
    for scan in real_scans:
        r0 = np.linalg.norm(scan.points[:, :3], axis=1)
        for alpha, beta in R_STAR_CASES:
            _, replaced = fog.fog_simulation(scan.points, alpha, beta, np.random.default_rng(0))
            r_star = _r_star(alpha, beta)
            expected = (scan.points[:, 3] > 0) & (r0 > r_star)
            away = np.abs(r0 - r_star) > 0.1
            assert np.array_equal(replaced[away], expected[away])
            assert not replaced[scan.points[:, 3] == 0].any()


@pytest.mark.data
def test_vectorised_fog_equals_per_point_loop(real_scans):
    pts = real_scans[0].points[::5]
    a, mask_a = fog.fog_simulation(pts, 0.01, 0.2, np.random.default_rng(42))
    b, mask_b = fog_loop(pts, 0.01, 0.2, np.random.default_rng(42))
    same = np.abs(a - b).max(1) <= 1e-5
    assert np.array_equal(mask_a, mask_b) and same.mean() >= 0.9999


def test_fog_knobs(rng):
    alpha, beta = fog.fog_parameters(0.06, "alpha", rng)
    assert alpha == 0.06 and beta == pytest.approx(0.046 * 0.06 / math.log(20))
    alpha, beta = fog.fog_parameters(0.2, "beta", rng)
    assert beta == 0.2 and alpha in fog.ALPHAS
    with pytest.raises(ValueError, match="unknown fog knob"):
        fog.fog_parameters(0.1, "gamma", rng)
