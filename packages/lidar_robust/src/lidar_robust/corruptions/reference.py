"""Per-point reference implementations written in the structure of the official Robo3D scripts (Python loops,
dict-keyed lookup tables, per-beam ``np.delete``). They are the speed baseline of ``lidar-robust bench`` and the
correctness oracles of the tests; they are not used to write data sets."""

from __future__ import annotations

import math

import numpy as np

from lidar_robust.corruptions import fog as fog_model


def fog_lut_dict(alpha: float) -> dict[float, tuple[float, float]]:
    """``{R_0 (0.1 m key): (R_fog, I_fog)}`` as the official scripts load it."""
    r_fog, i_fog = fog_model.lut(alpha)
    return {float(str(round(float(r0), 1))): (float(a), float(b)) for r0, a, b in zip(fog_model.LUT_R0, r_fog, i_fog,
                                                                                     strict=True)}  # fmt: skip


def fog_loop(
    points: np.ndarray, alpha: float, beta: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One Python iteration per point: LUT key ``float(str(round(R_0, 1)))`` capped at 200, then keep or replace."""
    table = fog_lut_dict(alpha)
    out = points.astype(np.float64).copy()
    replaced = np.zeros(len(points), dtype=bool)
    for j in range(len(points)):
        x, y, z, i = (float(v) for v in points[j])
        r0 = float(np.linalg.norm(points[j, :3]))
        key = min(float(str(round(np.float32(r0), 1))), 200.0)
        r_fog, i_fog = table[key]
        attenuated = math.exp(-2 * alpha * r0) * i
        response = i_fog * i * r0**2 * beta / fog_model.BETA_0
        if response > attenuated:
            noise = rng.uniform(r0 - fog_model.NOISE, r0 + fog_model.NOISE)
            scale = r_fog / r0 * r0 / noise
            out[j] = (x * scale, y * scale, z * scale, response)
            replaced[j] = True
        else:
            out[j, 3] = attenuated
    return out.astype(np.float32), replaced


def ring_ids_loop(points: np.ndarray) -> np.ndarray:
    """File-order ring estimation, one Python iteration per point."""
    ring = np.zeros(len(points), dtype=np.int64)
    current, previous = 0, None
    for j in range(len(points)):
        u = 0.5 * (1.0 + (-math.atan2(float(points[j, 1]), -float(points[j, 0]))) / math.pi)
        if previous is not None and previous > 0.8 and u < 0.2:
            current += 1
        ring[j] = min(current, 63)
        previous = u
    return ring


def beam_delete_loop(points: np.ndarray, ring: np.ndarray, drop: np.ndarray) -> np.ndarray:
    """Drop beams one by one with ``np.delete`` (the official beam-missing / cross-sensor structure)."""
    out, out_ring = points, ring
    for beam in drop:
        index = np.where(out_ring == beam)[0]
        out = np.delete(out, index, axis=0)
        out_ring = np.delete(out_ring, index)
    return out


def incomplete_echo_loop(
    points: np.ndarray, labels: np.ndarray, drop: float, rng: np.random.Generator
) -> np.ndarray:
    """Per-point Python label mapping, then per-class drops."""
    from lidar_robust.formats import LEARNING_MAP

    learning = np.array([LEARNING_MAP.get(int(v) & 0xFFFF, 0) for v in labels])
    keep = np.ones(len(points), dtype=bool)
    for c in (1, 2, 3, 4, 5):
        members = np.where(learning == c)[0]
        if len(members) > 10:
            keep[rng.choice(members, int(drop * len(members)), replace=False)] = False
    return points[keep]


def wet_ground_loop(points: np.ndarray, labels: np.ndarray, water_height: float, noise_floor: float) -> int:
    """Per-point Python label mapping and per-point Fresnel arithmetic; returns the number of kept ground points."""
    from lidar_robust.corruptions import robo3d
    from lidar_robust.corruptions.laser import estimate
    from lidar_robust.formats import LEARNING_MAP

    ground = [
        j for j in range(len(points)) if LEARNING_MAP.get(int(labels[j]) & 0xFFFF, 0) in (9, 10, 11, 12)
    ]
    if len(ground) < 1000:
        return len(ground)
    xyz = points[ground, :3].astype(np.float64)
    dist = [math.sqrt(float(x * x + y * y + z * z)) for x, y, z in xyz]
    theta = [math.acos(min(1.0, max(-1.0, -float(p[2]) / d))) for p, d in zip(xyz, dist, strict=True)]
    norm = [float(points[j, 3]) / max(math.cos(t), 1e-6) for j, t in zip(ground, theta, strict=True)]
    est = estimate(np.array(dist), np.array(norm), len(ground))
    fraction = min(max(water_height / robo3d.WATER_SATURATION_MM, 0.0), 1.0)
    kept = 0
    for j, d, t, n in zip(ground, dist, theta, norm, strict=True):
        p_out = est.power_factor * (est.a * d + est.b)
        rho = min(max(n / p_out if p_out else 0.05, 0.05), 1.0)
        _, _, tas_s, tas_p = robo3d.fresnel_transmission(np.array([t]), robo3d.N_AIR, robo3d.N_WATER)
        tw_angle = math.asin(min(1.0, robo3d.N_AIR / robo3d.N_WATER * math.sin(t)))
        rws_s, rws_p, tws_s, tws_p = robo3d.fresnel_transmission(
            np.array([tw_angle]), robo3d.N_WATER, robo3d.N_AIR
        )
        ts = float(tas_s[0] * rho * tws_s[0] / (1 - rho * rws_s[0]))
        tp = float(tas_p[0] * rho * tws_p[0] / (1 - rho * rws_p[0]))
        tw = (1 - fraction) * rho + fraction * max(ts, tp) / t if t else rho
        new = min(max(p_out * math.cos(t) * tw, 0.0), float(points[j, 3]))
        kept += new > noise_floor * (est.noise_a * d + est.noise_b) * math.cos(t)
    return kept


def snow_loop(points: np.ndarray, channel: np.ndarray, particles: list, channels: tuple[int, ...],
              target_power: str = "official") -> dict[int, tuple[float, float]]:  # fmt: skip
    """Per point × per flake Python loops for the points of ``channels``: {point: (d_max, i_new)} for every beam
    that contains at least one flake (intensity ×255 inside)."""
    from lidar_robust.corruptions import snow as model

    out = {}
    width = model.BEAM_WIDTH
    for j in np.flatnonzero(np.isin(channel, channels)):
        centres, radii = particles[int(channel[j])]
        x, y, z, i = (float(v) for v in points[j])
        d = math.sqrt(x * x + y * y + z * z)
        phi = math.atan2(y, x) % (2 * math.pi)
        i_max = 230.0 if int(channel[j]) in model.LOW_POWER_CHANNELS else 255.0
        flakes = []
        for (cx, cy), r in zip(centres, radii, strict=True):
            dist = math.hypot(cx, cy)
            if dist >= d:
                continue
            delta = math.asin(min(1.0, r / dist))
            rel = (math.atan2(cy, cx) - phi + math.pi) % (2 * math.pi) - math.pi
            lo, hi = max(rel - delta, -width / 2), min(rel + delta, width / 2)
            if hi > lo:
                flakes.append((dist, lo, hi))
        if not flakes:
            continue
        flakes.sort()
        covered: list[tuple[float, float]] = []
        contributions = []
        for dist, lo, hi in flakes:
            new = hi - lo
            for a, b in covered:  # subtract what nearer flakes already cover (intervals kept disjoint)
                new -= max(0.0, min(hi, b) - max(lo, a))
            covered = _merge([*covered, (lo, hi)])
            contributions.append((dist, max(new, 0.0) / width))
        ratio_target = max(0.0, 1.0 - sum(r for _, r in contributions))
        power = np.zeros(model.M_EXT)
        amplitudes = [
            (dist, 0.9 * i_max * ratio * float(model.xi(dist)) / dist**2) for dist, ratio in contributions
        ]
        target = 0.9 * i_max / d**2 if target_power == "official" else i * 255.0
        amplitudes.append((d, target * ratio_target * float(model.xi(d))))
        for dist, amp in amplitudes:
            for k in range(math.ceil(10 * dist), math.floor(10 * (dist + model.C_TAU)) + 1):
                if 0 <= k < model.M_EXT:
                    power[k] += amp * math.sin(math.pi * (model.RANGE_BINS[k] - dist) / model.C_TAU) ** 2
        k_star = int(power.argmax())
        out[int(j)] = (k_star / 10.0 - model.C_TAU / 2.0, min(max(float(int(power[k_star])), 0.0), i_max))
    return out


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
