"""Snowfall (Hahner et al., CVPR 2022), re-implemented from the paper's model and the behaviour documented in
spec §2.6 (nothing of the authors' non-commercial code or particle files is used).

1. Snow occupancy ρ = ρ_w R_s/(3.6·10⁶ ρ_s v_t) and equivalent rain rate R_r = ((R_s/(487 ρ_s D v_t))^{3/2}.
2. Particles per channel: dart throwing in an 80 m disk (Gunn–Marshall diameters, re-drawn above 20 mm; a sphere
   cut by the channel plane at height h ~ U(−D/2, D/2)), no overlaps, no disk containing the origin, until the
   occupied area reaches ρπR². Vectorised batch proposals with a uniform-grid hash (a proposal that overlaps an
   earlier proposal of its own batch is rejected; sequential dart throwing is the limit of batch size 1).
3. Per beam (opening w = 0.003 rad): flakes nearer (2-D centre distance) than the point's 3-D range and inside
   the beam occlude, nearest first, the part of the beam not yet occluded; each contributor (flakes, then the
   target) adds a sin² pulse to the received power on 10 cm bins; the argmax bin decides: |d_max − d| < 0.2 m
   keeps the point with the new intensity, otherwise it becomes a snow return at d_max.
4. Noise floor: points whose intensity falls to the ground-estimated threshold are removed.

``target_power="official"`` reproduces the code quirk that shaped the published data (the target of a beam with
flakes is computed with the flakes' constant 0.9·i_max/β_0); ``"range_normalised"`` uses i·d²/β_0.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from lidar_robust.corruptions.laser import GROUND_CLASSES, estimate, incidence
from lidar_robust.formats import Scan, learning_labels
from lidar_robust.rings import elevation_channels

RHO_W, RHO_S, D_RAIN = 1.0, 0.1, 0.003
R_DISK = 80.0
BEAM_WIDTH = 0.003
C_TAU = 299_792_458.0 * 10e-9  # c·τ_H with τ_H = 10 ns
BETA_0 = 1e-6 / math.pi
M_EXT = math.ceil(1200 + 10 * C_TAU)
RANGE_BINS = np.round(np.linspace(0.0, 120.0 + C_TAU, M_EXT), 2)
LOW_POWER_CHANNELS = (53, 55, 56, 58)
TARGET_POWER = ("official", "range_normalised")
MAX_DIAMETER_MM = 20.0
NARROW = 0.01  # flakes whose half-angle exceeds this (rad) are matched to beams by brute force


def occupancy(rate: float, terminal_velocity: float) -> float:
    """ρ = ρ_w R_s/(3.6·10⁶ ρ_s v_t)."""
    return (RHO_W * rate) / (RHO_S * terminal_velocity * 3.6e6)


def rain_rate(rate: float, terminal_velocity: float) -> float:
    """Equivalent rain rate R_r = sqrt((R_s/(487 ρ_s D v_t))³)."""
    return math.sqrt((rate / (487.0 * RHO_S * D_RAIN * terminal_velocity)) ** 3)


def diameter_rate(rain: float, law: str = "gunn") -> float:
    """Λ (cm⁻¹) of the exponential diameter law: Gunn–Marshall 25.5·R_r^−0.48 or Sekhon–Srivastava 22.9·R_r^−0.45."""
    if law == "gunn":
        return 25.5 * rain**-0.48
    if law == "sekhon":
        return 22.9 * rain**-0.45
    raise ValueError(f"unknown diameter law {law!r} (expected gunn or sekhon)")


def draw_diameters(rng: np.random.Generator, n: int, lam: float) -> np.ndarray:
    """Diameters in mm ~ Exp(scale 1/Λ cm) × 10, values above 20 mm re-drawn."""
    d = rng.exponential(1.0 / lam, n) * 10.0
    bad = d > MAX_DIAMETER_MM
    while bad.any():
        d[bad] = rng.exponential(1.0 / lam, int(bad.sum())) * 10.0
        bad = d > MAX_DIAMETER_MM
    return d


def sample_particles(rain: float, rho: float, rng: np.random.Generator, r_disk: float = R_DISK,
                     law: str = "gunn") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Disks (centres (n, 2) m, radii (n,) m) of one channel plane until the occupied area reaches ρπR²."""
    lam = diameter_rate(rain, law)
    target = rho * math.pi * r_disk**2
    mean_area = math.pi * (2.0 / 3.0) * 2.0 / lam**2 / 4.0 * 1e-4  # E[π r²] in m²
    cell = MAX_DIAMETER_MM / 1000.0
    side = int(math.ceil(2 * r_disk / cell)) + 3
    centres = np.zeros((0, 2))
    radii = np.zeros(0)
    area = 0.0
    while area < target:
        n = max(256, int(1.3 * (target - area) / mean_area))
        rad = np.sqrt(rng.uniform(0.0, r_disk**2, n))
        theta = rng.uniform(0.0, 2 * np.pi, n)
        c = np.stack([rad * np.cos(theta), rad * np.sin(theta)], 1)
        diam = draw_diameters(rng, n, lam) / 1000.0
        h = rng.uniform(-diam / 2, diam / 2)
        r = np.sqrt(np.maximum((diam / 2) ** 2 - h**2, 0.0))
        ok = np.linalg.norm(c, axis=1) > r
        ok &= ~_overlaps(centres, radii, c, r, cell, side)
        c, r = c[ok], r[ok]
        cumulative = area + np.cumsum(np.pi * r**2)
        stop = int(np.searchsorted(cumulative, target, side="left"))
        take = min(stop + 1, len(r))
        centres, radii = np.concatenate([centres, c[:take]]), np.concatenate([radii, r[:take]])
        area = float(cumulative[take - 1]) if take else area
    return centres, radii


def _overlaps(acc_c: np.ndarray, acc_r: np.ndarray, new_c: np.ndarray, new_r: np.ndarray, cell: float,
              side: int) -> np.ndarray:  # fmt: skip
    """True for new disks overlapping an accepted disk or an earlier new disk (grid hash, cell ≥ max diameter)."""
    all_c = np.concatenate([acc_c, new_c])
    all_r = np.concatenate([acc_r, new_r])
    n_acc = len(acc_c)
    grid = np.floor((all_c + R_DISK) / cell).astype(np.int64) + 1
    keys = grid[:, 0] * side + grid[:, 1]
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    new_index = np.arange(n_acc, len(all_c))
    hit = np.zeros(len(new_c), dtype=bool)
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            query = keys[new_index] + dx * side + dy
            lo = np.searchsorted(sorted_keys, query, "left")
            hi = np.searchsorted(sorted_keys, query, "right")
            for m in range(int((hi - lo).max(initial=0))):
                valid = lo + m < hi
                j = order[np.minimum(lo + m, len(order) - 1)]
                earlier = (j < new_index) & valid
                dist = np.linalg.norm(all_c[j] - all_c[new_index], axis=1)
                hit |= earlier & (dist < all_r[j] + new_r)
    return hit


def particle_cache_dir() -> Path:
    from paperlab_core.data import cache_root

    return Path(os.environ.get("LIDAR_ROBUST_SNOW_CACHE", cache_root() / "lidar_robust" / "snow"))


def channel_particles(rate: float, terminal_velocity: float, seed: int = 0, channels: int = 64,
                      law: str = "gunn", cache: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """64 particle sets for (R_r, ρ), deterministic per (seed, R_r, ρ, set); cached as .npz."""
    rain, rho = rain_rate(rate, terminal_velocity), occupancy(rate, terminal_velocity)
    path = particle_cache_dir() / f"snow_{law}_{rain:.10g}_{rho:.10g}_{seed}_{channels}.npz"
    if cache and path.is_file():
        with np.load(path) as data:
            return [(data[f"c{k}"], data[f"r{k}"]) for k in range(channels)]
    words = [seed, int(round(rain * 1e6)), int(round(rho * 1e12))]
    sets = [sample_particles(rain, rho, np.random.default_rng(np.random.SeedSequence([*words, k])), law=law)
            for k in range(channels)]  # fmt: skip
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            **{f"c{k}": c for k, (c, _) in enumerate(sets)},
            **{f"r{k}": r for k, (_, r) in enumerate(sets)},
        )
        tmp.replace(path)
    return sets


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def beam_flake_pairs(points: np.ndarray, channel: np.ndarray, particles: list[tuple[np.ndarray, np.ndarray]],
                     width: float = BEAM_WIDTH) -> dict[str, np.ndarray]:  # fmt: skip
    """Every (point, flake) with 2-D flake distance < the point's 3-D range and the flake inside the beam:
    point index, flake distance, occluded interval [lo, hi] relative to the beam (clipped to ±w/2)."""
    d = np.linalg.norm(points[:, :3], axis=1).astype(np.float64)
    phi = np.arctan2(points[:, 1], points[:, 0]).astype(np.float64) % (2 * np.pi)
    out: dict[str, list[np.ndarray]] = {"point": [], "dist": [], "lo": [], "hi": []}
    half_w = width / 2
    for c in np.unique(channel):
        centres, radii = particles[int(c)]
        if len(radii) == 0:
            continue
        idx = np.flatnonzero(channel == c)
        dist = np.linalg.norm(centres, axis=1)
        psi = np.arctan2(centres[:, 1], centres[:, 0]) % (2 * np.pi)
        delta = np.arcsin(np.clip(radii / dist, 0.0, 1.0))
        narrow = delta <= NARROW
        # narrow flakes: azimuth-sorted window search (duplicated across the 0/2π seam)
        reach = half_w + NARROW
        az, ids = psi[narrow], np.flatnonzero(narrow)
        seam_lo, seam_hi = az < reach, az > 2 * np.pi - reach
        az = np.concatenate([az, az[seam_lo] + 2 * np.pi, az[seam_hi] - 2 * np.pi])
        ids = np.concatenate([ids, ids[seam_lo], ids[seam_hi]])
        order = np.argsort(az)
        az, ids = az[order], ids[order]
        lo = np.searchsorted(az, phi[idx] - reach, "left")
        hi = np.searchsorted(az, phi[idx] + reach, "right")
        count = hi - lo
        rows = np.repeat(np.arange(len(idx)), count)
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(count)[:-1]]), count)
        flakes = ids[np.arange(len(rows)) + starts]
        points_idx = idx[rows]
        wide = np.flatnonzero(~narrow)
        if len(wide):
            points_idx = np.concatenate([points_idx, np.repeat(idx, len(wide))])
            flakes = np.concatenate([flakes, np.tile(wide, len(idx))])
        rel = _wrap(psi[flakes] - phi[points_idx])
        lo_k = np.maximum(rel - delta[flakes], -half_w)
        hi_k = np.minimum(rel + delta[flakes], half_w)
        keep = (dist[flakes] < d[points_idx]) & (hi_k > lo_k)
        out["point"].append(points_idx[keep])
        out["dist"].append(dist[flakes[keep]])
        out["lo"].append(lo_k[keep])
        out["hi"].append(hi_k[keep])
    if not out["point"]:
        return {k: np.zeros(0, dtype=np.int64 if k == "point" else np.float64) for k in out}
    return {k: np.concatenate(v) for k, v in out.items()}


def occlusion_ratios(point: np.ndarray, dist: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     width: float = BEAM_WIDTH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per pair: the share of the beam it occludes that no nearer flake occludes (ratio_k); per beam (unique
    point): ratio_target = 1 − Σ ratio_k. Returns (ratios per pair, beams, ratio_target per beam)."""
    order = np.lexsort((dist, point))
    point, dist, lo, hi = point[order], dist[order], lo[order], hi[order]
    beams, start, count = np.unique(point, return_index=True, return_counts=True)
    ratios = np.zeros(len(point))
    for k in np.unique(count):
        sel = np.flatnonzero(count == k)
        index = start[sel, None] + np.arange(k)  # (n, k) pairs of these beams, nearest first
        a, b = lo[index], hi[index]
        edges = np.sort(np.concatenate([a, b, np.full((len(sel), 1), -width / 2), np.full((len(sel), 1), width / 2)],
                                       1), 1)  # fmt: skip
        left, right = edges[:, :-1], edges[:, 1:]
        mid = 0.5 * (left + right)
        covers = (a[:, None, :] <= mid[:, :, None]) & (b[:, None, :] >= mid[:, :, None])  # (n, segments, k)
        first = np.where(covers.any(2), covers.argmax(2), -1)  # nearest covering flake (sorted by distance)
        length = right - left
        for j in range(k):
            ratios[index[:, j]] = ((first == j) * length).sum(1) / width
    target = 1.0 - np.bincount(np.searchsorted(beams, point), weights=ratios, minlength=len(beams))
    unsorted = np.empty_like(ratios)
    unsorted[order] = ratios
    return unsorted, beams, np.clip(target, 0.0, 1.0)


def xi(r: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(r, dtype=np.float64) - 0.9) / 0.1, 0.0, 1.0)


def strongest_bin(beam_row: np.ndarray, r: np.ndarray, amplitude: np.ndarray, n_beams: int
                  ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Argmax bin and its power per beam of the received power: contributor k adds
    amplitude_k·sin²(π(R − r_k)/(cτ_H)) on bins [ceil(10 r_k), floor(10(r_k + cτ_H))] (bin ranges
    R = round(linspace(0, 120 + cτ_H, M_ext), 2)). Sparse: only the bins a pulse covers are summed; the first
    maximum wins, as ``argmax`` over the dense row (a beam without any power gets bin 0)."""
    first = np.ceil(10.0 * r).astype(np.int64)
    last = np.minimum(np.floor(10.0 * (r + C_TAU)).astype(np.int64), M_EXT - 1)
    width = int((last - first).max(initial=-1)) + 1
    offsets = np.arange(max(width, 0))
    bins = first[:, None] + offsets[None, :]
    ok = (bins <= last[:, None]) & (bins >= 0)
    rows = np.broadcast_to(beam_row[:, None], bins.shape)[ok]
    bins = bins[ok]
    values = (amplitude[:, None] * np.sin(np.pi * (RANGE_BINS[np.clip(first[:, None] + offsets, 0, M_EXT - 1)]
                                                  - r[:, None]) / C_TAU) ** 2)[ok]  # fmt: skip
    keys, inverse = np.unique(rows * M_EXT + bins, return_inverse=True)
    power = np.bincount(inverse, weights=values, minlength=len(keys))
    key_rows, key_bins = keys // M_EXT, keys % M_EXT
    order = np.lexsort((key_bins, -power, key_rows))
    firsts = order[np.r_[True, key_rows[order][1:] != key_rows[order][:-1]]]
    best_bin = np.zeros(n_beams, dtype=np.int64)
    best_power = np.zeros(n_beams)
    best_bin[key_rows[firsts]] = key_bins[firsts]
    best_power[key_rows[firsts]] = power[firsts]
    best_bin[best_power <= 0] = 0
    return best_bin, np.maximum(best_power, 0.0)


def snow_returns(points: np.ndarray, channel: np.ndarray, particles: list[tuple[np.ndarray, np.ndarray]],
                 target_power: str = "official", chunk: int = 65536
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """For every beam with at least one flake: (point index, d_max, new intensity on the 0–255 scale)."""
    if target_power not in TARGET_POWER:
        raise ValueError(f"unknown target_power {target_power!r} (expected one of {', '.join(TARGET_POWER)})")
    intensity = points[:, 3].astype(np.float64) * 255.0
    d = np.linalg.norm(points[:, :3], axis=1).astype(np.float64)
    i_max = np.where(np.isin(channel, LOW_POWER_CHANNELS), 230.0, 255.0)
    pairs = beam_flake_pairs(points, channel, particles)
    ratios, beams, ratio_target = occlusion_ratios(pairs["point"], pairs["dist"], pairs["lo"], pairs["hi"])
    beam_of_pair = np.searchsorted(beams, pairs["point"])
    d_max_all, i_new_all = np.zeros(len(beams)), np.zeros(len(beams))
    for s in range(0, len(beams), chunk):
        b = beams[s : s + chunk]
        in_chunk = (beam_of_pair >= s) & (beam_of_pair < s + len(b))
        row_f = beam_of_pair[in_chunk] - s
        r_f = pairs["dist"][in_chunk]
        amp_f = 0.9 * i_max[pairs["point"][in_chunk]] * ratios[in_chunk] * xi(r_f) / r_f**2
        target_const = 0.9 * i_max[b] / d[b] ** 2 if target_power == "official" else intensity[b]
        amp_t = target_const * ratio_target[s : s + chunk] * xi(d[b])
        k_star, p_star = strongest_bin(np.concatenate([row_f, np.arange(len(b))]), np.concatenate([r_f, d[b]]),
                                       np.concatenate([amp_f, amp_t]), len(b))  # fmt: skip
        d_max_all[s : s + chunk] = k_star / 10.0 - C_TAU / 2.0
        i_new_all[s : s + chunk] = np.clip(np.trunc(p_star), 0.0, i_max[b])
    return beams, d_max_all, i_new_all


def snowfall(scan: Scan, rng: np.random.Generator, rate: float, terminal_velocity: float, created_label: int = 0,
             target_power: str = "official", noise_floor: float = 0.7, particle_seed: int = 0,
             law: str = "gunn") -> tuple[Scan, dict]:  # fmt: skip
    """Registry entry (intensities ×255 inside, /255 on output, as the official pipeline). The particle field
    is the same for every scan of a level (as the official particle files); ``rng`` is not consumed."""
    particles = channel_particles(rate, terminal_velocity, particle_seed, law=law)
    points = scan.points.astype(np.float64)
    intensity = points[:, 3] * 255.0
    d = np.linalg.norm(scan.points[:, :3], axis=1).astype(np.float64)
    channel = elevation_channels(points)
    beams, d_max, i_new = snow_returns(scan.points, channel, particles, target_power)
    snow = np.abs(d_max - d[beams]) >= 0.2
    new_intensity = intensity.copy()
    new_intensity[beams] = i_new
    new_xyz = points[:, :3].copy()
    new_xyz[beams] *= np.where(snow, d_max / d[beams], 1.0)[:, None]
    replaced = np.zeros(len(points), dtype=bool)
    replaced[beams[snow]] = True
    keep = np.ones(len(points), dtype=bool)
    removed = 0
    if scan.labels is not None and noise_floor > 0:
        ground = np.isin(learning_labels(scan.labels), GROUND_CLASSES)
        if ground.sum() > 10:
            cos = np.cos(incidence(points[:, :3]))
            est = estimate(d[ground], intensity[ground] / np.maximum(cos[ground], 1e-6), int(ground.sum()))
            thr_ground = est.threshold(d[ground], noise_floor) * cos[ground]
            threshold = np.polyval(np.polyfit(d[ground], thr_ground, 2), d)
            keep = replaced | (new_intensity > threshold)
            removed = int((~keep).sum())
    out_points = np.concatenate([new_xyz, (new_intensity / 255.0)[:, None]], 1).astype(np.float32)[keep]
    labels = None
    if scan.labels is not None:
        labels = scan.labels.copy()
        labels[replaced] = created_label
        labels = labels[keep]
    ring = None if scan.ring is None else scan.ring[keep]
    info = {"replaced": int(replaced.sum()), "attenuated": int(len(beams) - replaced.sum()), "removed": removed,
            "beams_with_flakes": int(len(beams)), "rain_rate": rain_rate(rate, terminal_velocity),
            "occupancy": occupancy(rate, terminal_velocity)}  # fmt: skip
    return Scan(out_points, labels, ring, scan.name), info
