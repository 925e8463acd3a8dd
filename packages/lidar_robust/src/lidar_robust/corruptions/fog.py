"""Fog (Hahner et al., ICCV 2021), re-implemented from the paper's equations (spec §2.5).

Per return at range R_0 with intensity i: the hard target is attenuated, ``i' = e^{−2αR_0}·i``; the fog (soft
target) response along the same ray is

    P_R,soft(R) = C_A P_0 β ∫_0^{2τ_H} sin²(πt/(2τ_H)) e^{−2α(R − ct/2)} ξ(R − ct/2)/(R − ct/2)² U(R_0 − R + ct/2) dt

and the point is replaced by a fog return when ``I_fog(R_0)·i·R_0²·β/β_0 > i'`` (β_0 = 10⁻⁶/π). The lookup table
``R_fog(R_0) = argmax_R P``, ``I_fog(R_0) = max_R P/(C_A P_0 β)`` depends on α only. Because every integrand sample
at R ≤ R_0 has R − ct/2 ≤ R_0 (U only matters at t = 0, where sin² = 0), the table is a running maximum (with
running first argmax) of one curve P(R) — one 2000 × 2000 evaluation per α (derived, spec §2.5). Numerics follow
the official tables: R grid ``linspace(0, 200, 2000)``, t grid ``linspace(0, 2τ_H, 2000)``, composite Simpson,
1/(R − ct/2)² set to 0 where R − ct/2 ≤ 0.9 m, P = 0 for R > R_0. Our tables ship as package data and
``lidar-robust fog-lut`` regenerates them (nothing of the authors' non-commercial code or tables is used).
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.integrate import simpson

from lidar_robust.formats import Scan

C_LIGHT = 299_792_458.0
TAU_H = 20e-9
GAMMA = 1e-6
BETA_0 = GAMMA / math.pi
ALPHAS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.06)
LUT_R0 = np.round(np.arange(2001) * 0.1, 1)  # 0 … 200 m in 0.1 m steps
NOISE = 10.0
FOG_KNOBS = ("beta", "alpha")


def xi(r: np.ndarray) -> np.ndarray:
    """Crosstalk/overlap function: 0 for r ≤ 0.9 m, 1 for r ≥ 1.0 m, linear in between."""
    return np.clip((np.asarray(r, dtype=np.float64) - 0.9) / 0.1, 0.0, 1.0)


def soft_integrand(t: np.ndarray, r: np.ndarray, alpha: float, tau_h: float = TAU_H) -> np.ndarray:
    """sin²(πt/2τ_H)·e^{−2α(R − ct/2)}·ξ(R − ct/2)/(R − ct/2)², the last factor 0 where R − ct/2 ≤ 0.9 m."""
    d = r - C_LIGHT * t / 2.0
    safe = np.where(d > 0.9, d, 1.0)
    inverse_square = np.where(d > 0.9, 1.0 / safe**2, 0.0)
    return np.sin(np.pi * t / (2 * tau_h)) ** 2 * np.exp(-2 * alpha * d) * xi(d) * inverse_square


def response_curve(alpha: float, n_r: int = 2000, n_t: int = 2000, r_max: float = 200.0,
                   tau_h: float = TAU_H) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(R grid, P(R)/(C_A P_0 β)) by composite Simpson on the official grids."""
    r = np.linspace(0.0, r_max, n_r)
    t = np.linspace(0.0, 2 * tau_h, n_t)
    values = simpson(soft_integrand(t[None, :], r[:, None], alpha, tau_h), x=t, axis=1)
    return r, values


def build_lut(alpha: float, tau_h: float = TAU_H) -> tuple[np.ndarray, np.ndarray]:
    """(R_fog, I_fog) at R_0 = 0 … 200 m (0.1 m): running max / first argmax of P over the grid points R ≤ R_0."""
    r, p = response_curve(alpha, tau_h=tau_h)
    running = np.maximum.accumulate(p)
    previous = np.concatenate([[-np.inf], running[:-1]])
    new_max = p > previous
    arg = np.maximum.accumulate(np.where(new_max, np.arange(len(p)), 0))
    last = np.searchsorted(r, LUT_R0 + 1e-9, side="right") - 1  # grid points with R ≤ R_0
    i_fog = running[last]
    r_fog = np.where(i_fog > 0, r[arg[last]], 0.0)
    return r_fog, np.where(i_fog > 0, i_fog, 0.0)


def build_tables(alphas: tuple[float, ...] = ALPHAS) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"alphas": np.asarray(alphas, dtype=np.float64), "r0": LUT_R0}
    for k, alpha in enumerate(alphas):
        out[f"r_fog_{k}"], out[f"i_fog_{k}"] = build_lut(alpha)
    return out


def save_tables(path: str | Path, tables: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    np.savez_compressed(path, **tables)
    return path


@lru_cache(maxsize=1)
def shipped_tables() -> dict[str, np.ndarray]:
    """The package's own regenerated tables (``assets/fog_lut.npz``)."""
    with resources.files("lidar_robust").joinpath("assets", "fog_lut.npz").open("rb") as handle:
        with np.load(handle) as data:
            return {k: data[k] for k in data.files}


def lut(alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(R_fog, I_fog) for ``alpha``: the shipped table when α is one of the six, else built on the fly."""
    tables = shipped_tables()
    match = np.flatnonzero(np.isclose(tables["alphas"], alpha, rtol=0, atol=1e-12))
    if match.size:
        return tables[f"r_fog_{match[0]}"], tables[f"i_fog_{match[0]}"]
    return build_lut(alpha)


def lut_index(r0: np.ndarray) -> np.ndarray:
    """Nearest 0.1 m entry (no interpolation), capped at 200 m — the official ``round(R_0, 1)`` key."""
    return np.minimum(np.rint(np.asarray(r0, dtype=np.float32) * np.float32(10.0)).astype(np.int64), 2000)


def fog_parameters(value: float, knob: str, rng: np.random.Generator) -> tuple[float, float]:
    """(α, β): ``beta`` sets β and draws α from the six table values; ``alpha`` sets α and β = 0.046·α/ln 20."""
    if knob == "beta":
        return float(rng.choice(ALPHAS)), float(value)
    if knob == "alpha":
        return float(value), 0.046 * float(value) / math.log(20.0)
    raise ValueError(f"unknown fog knob {knob!r} (expected one of {', '.join(FOG_KNOBS)})")


def fog_simulation(points: np.ndarray, alpha: float, beta: float, rng: np.random.Generator,
                   noise_clip: bool = False) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Vectorised fog: (new points, replaced mask). Replaced points move to R_fog on their ray, take the fog
    response as intensity, then range noise "v1": xyz × R_0/U(R_0 − 10, R_0 + 10), one draw per replaced point
    in point order (``noise_clip`` bounds the divisor below by 1 m)."""
    r_fog_table, i_fog_table = lut(alpha)
    xyz = points[:, :3]
    intensity = points[:, 3].astype(np.float64)
    r0 = np.linalg.norm(xyz, axis=1)  # float32 norm, as the official loop
    r0d = r0.astype(np.float64)
    index = lut_index(r0)
    attenuated = np.exp(-2.0 * alpha * r0d) * intensity
    fog_response = i_fog_table[index] * intensity * r0d**2 * beta / BETA_0
    replaced = fog_response > attenuated
    out = points.astype(np.float64).copy()
    out[:, 3] = attenuated
    if replaced.any():
        r0_rep = r0d[replaced]
        scale = r_fog_table[index[replaced]] / r0_rep
        low = r0_rep - NOISE
        if noise_clip:
            low = np.maximum(low, 1.0)
        distance_noise = rng.uniform(low, r0_rep + NOISE)
        scale = scale * r0_rep / distance_noise
        out[replaced, :3] = out[replaced, :3] * scale[:, None]
        out[replaced, 3] = fog_response[replaced]
    return out.astype(np.float32), replaced


def fog(scan: Scan, rng: np.random.Generator, value: float, knob: str = "beta", created_label: int = 0,
        noise_clip: bool = False) -> tuple[Scan, dict]:  # fmt: skip
    """Registry entry: draw (α, β) for this scan, simulate, relabel replaced points ``created_label``."""
    alpha, beta = fog_parameters(value, knob, rng)
    points, replaced = fog_simulation(scan.points, alpha, beta, rng, noise_clip)
    labels = None
    if scan.labels is not None:
        labels = scan.labels.copy()
        labels[replaced] = created_label
    info = {"alpha": alpha, "beta": beta, "knob": knob, "replaced": int(replaced.sum())}
    return Scan(points, labels, scan.ring, scan.name), info
