"""The Robo3D corruptions besides fog and snow (Kong et al., ICCV 2023; behaviour of the official scripts as
described in spec §2.7, re-implemented): wet ground, motion blur, crosstalk, incomplete echo, beam missing,
cross-sensor. Vectorised; randomness from the per-scan generator (the official scripts' shared global seed made
outputs depend on the worker count)."""

from __future__ import annotations

import numpy as np

from lidar_robust.corruptions.laser import GROUND_CLASSES, estimate, incidence
from lidar_robust.formats import Scan, learning_labels

VEHICLE_CLASSES = (1, 2, 3, 4, 5)  # car, bicycle, motorcycle, truck, other-vehicle (learning ids)
N_AIR, N_WATER = 1.0003, 1.33
WATER_SATURATION_MM = 1.2


def _take(scan: Scan, index: np.ndarray, strip_instances: bool = False) -> Scan:
    labels = None
    if scan.labels is not None:
        labels = scan.labels[index]
        if strip_instances:
            labels = labels & np.uint32(0xFFFF)
    return Scan(scan.points[index], labels, None if scan.ring is None else scan.ring[index], scan.name)


def motion_blur(scan: Scan, rng: np.random.Generator, sigma: float) -> tuple[Scan, dict]:
    """One global translation t ~ N(0, σ²) per axis, then per-point jitter N(0, (0.1σ)²) in x, y and
    N(0, (0.05σ)²) in z, each clipped to ±3σ."""
    n = len(scan)
    shift = rng.normal(0.0, sigma, size=3)
    jitter = np.stack([rng.normal(0.0, 0.1 * sigma, n), rng.normal(0.0, 0.1 * sigma, n),
                       rng.normal(0.0, 0.05 * sigma, n)], 1)  # fmt: skip
    jitter = np.clip(jitter, -3 * sigma, 3 * sigma)
    points = scan.points.copy()
    points[:, :3] = (points[:, :3] + shift + jitter).astype(np.float32)
    labels = None if scan.labels is None else scan.labels & np.uint32(0xFFFF)
    return Scan(points, labels, scan.ring, scan.name), {"shift": shift.tolist()}


def crosstalk(
    scan: Scan, rng: np.random.Generator, ratio: float, created_label: int = 23
) -> tuple[Scan, dict]:
    """``int(ratio·N)`` points (without replacement) get N(0, 1)·3.0 added to x, y, z and intensity; label 23."""
    count = int(ratio * len(scan))
    index = rng.choice(len(scan), count, replace=False)
    points = scan.points.copy()
    points[index] += (rng.normal(0.0, 1.0, size=(count, 4)) * 3.0).astype(np.float32)
    labels = None
    if scan.labels is not None:
        labels = scan.labels & np.uint32(0xFFFF)
        labels[index] = created_label
    return Scan(points, labels, scan.ring, scan.name), {"changed": count}


def incomplete_echo(scan: Scan, rng: np.random.Generator, drop: float) -> tuple[Scan, dict]:
    """For each vehicle class with > 10 points drop ``int(drop·n_c)`` of its points (without replacement)."""
    if scan.labels is None:
        raise ValueError("incomplete echo needs labels")
    learning = learning_labels(scan.labels)
    keep = np.ones(len(scan), dtype=bool)
    dropped = {}
    for c in VEHICLE_CLASSES:
        members = np.flatnonzero(learning == c)
        if len(members) > 10:
            gone = rng.choice(members, int(drop * len(members)), replace=False)
            keep[gone] = False
            dropped[int(c)] = int(len(gone))
    return _take(scan, np.flatnonzero(keep), strip_instances=True), {"dropped": dropped}


def beam_missing(scan: Scan, rng: np.random.Generator, beams: int) -> tuple[Scan, dict]:
    """Drop the rings drawn (with replacement, as ``np.random.choice``) from 4..58."""
    if scan.ring is None:
        raise ValueError("beam missing needs the clean scan's ring ids")
    drawn = rng.choice(np.arange(4, 59), beams)
    keep = ~np.isin(scan.ring, drawn)
    return _take(scan, np.flatnonzero(keep)), {"dropped_beams": sorted(set(drawn.tolist()))}


def cross_sensor_ids(beams: int) -> np.ndarray:
    """Deterministic ring ids dropped: 16 → 1::4, 32 → 1::2, 48 → astype(int)(arange(1, 64, 1.33))."""
    if beams == 16:
        return np.arange(64)[1::4]
    if beams == 32:
        return np.arange(64)[1::2]
    if beams == 48:
        return np.arange(1, 64, 1.33).astype(int)
    raise ValueError(f"cross-sensor drops 16, 32 or 48 beams, got {beams}")


def cross_sensor(scan: Scan, rng: np.random.Generator, beams: int) -> tuple[Scan, dict]:
    """Drop the deterministic rings, then keep every 2nd point of the whole remaining scan (``[::2]``)."""
    if scan.ring is None:
        raise ValueError("cross-sensor needs the clean scan's ring ids")
    keep = np.flatnonzero(~np.isin(scan.ring, cross_sensor_ids(beams)))[::2]
    return _take(scan, keep), {"dropped_beams": cross_sensor_ids(beams).tolist()}


def fresnel_transmission(
    theta: np.ndarray, n1: float, n2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Power reflection/transmission (R_s, R_p, T_s, T_p) from the amplitude Fresnel equations; transmissions
    divided by cos θ_i·n1/(n2 cos θ_t) as in the wet-ground model."""
    cos_i = np.cos(theta)
    sin_t = np.clip(n1 / n2 * np.sin(theta), -1.0, 1.0)
    cos_t = np.sqrt(1.0 - sin_t**2)
    rs = (n1 * cos_i - n2 * cos_t) / (n1 * cos_i + n2 * cos_t)
    rp = (n2 * cos_i - n1 * cos_t) / (n2 * cos_i + n1 * cos_t)
    ts = 2 * n1 * cos_i / (n1 * cos_i + n2 * cos_t)
    tp = 2 * n1 * cos_i / (n2 * cos_i + n1 * cos_t)
    factor = n2 * cos_t / (n1 * np.maximum(cos_i, 1e-12))
    return rs**2, rp**2, ts**2 * factor, tp**2 * factor


def wet_ground(scan: Scan, rng: np.random.Generator, water_height: float, noise_floor: float,
               legacy_intensity_scale: bool = True) -> tuple[Scan, dict]:  # fmt: skip
    """Wet-ground model (spec §2.7): Fresnel two-interface transmission through a water film on the ground; ground
    points whose new intensity falls below the noise threshold are removed. Non-ground points come first, in
    order, then the kept ground points (ring order is broken). < 1,000 ground points → unchanged."""
    if scan.labels is None:
        raise ValueError("wet ground needs labels")
    ground = np.isin(learning_labels(scan.labels), GROUND_CLASSES)
    n_ground = int(ground.sum())
    if n_ground < 1000:
        return scan, {"ground": n_ground, "removed": 0}
    scale = 1.0 if legacy_intensity_scale else 255.0
    g = np.flatnonzero(ground)
    xyz = scan.points[g, :3].astype(np.float64)
    intensity = scan.points[g, 3].astype(np.float64) * scale
    theta = incidence(xyz)
    cos = np.cos(theta)
    distance = np.linalg.norm(xyz, axis=1)
    normalised = intensity / np.maximum(cos, 1e-6)
    est = estimate(distance, normalised, n_ground)
    p_out = est.power(distance)
    threshold = est.threshold(distance, noise_floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.clip(normalised / p_out, 0.05, 1.0)
    _, _, t_as_s, t_as_p = fresnel_transmission(theta, N_AIR, N_WATER)
    theta_water = np.arcsin(np.clip(N_AIR / N_WATER * np.sin(theta), -1.0, 1.0))
    r_ws_s, r_ws_p, t_ws_s, t_ws_p = fresnel_transmission(theta_water, N_WATER, N_AIR)
    t_s = t_as_s * rho * t_ws_s / (1.0 - rho * r_ws_s)
    t_p = t_as_p * rho * t_ws_p / (1.0 - rho * r_ws_p)
    t = np.maximum(t_s, t_p)
    fraction = float(np.clip(water_height / WATER_SATURATION_MM, 0.0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        tw = (1.0 - fraction) * rho + fraction * t / theta
        new = np.clip(p_out * cos * tw, 0.0, intensity)
    new = np.nan_to_num(new, nan=0.0)
    kept = new > threshold * cos
    order = np.concatenate([np.flatnonzero(~ground), g[kept]])
    points = scan.points.copy()
    points[g, 3] = (new / scale).astype(np.float32)
    out = Scan(points[order], scan.labels[order] & np.uint32(0xFFFF),
               None if scan.ring is None else scan.ring[order], scan.name)  # fmt: skip
    return out, {"ground": n_ground, "removed": int((~kept).sum())}
