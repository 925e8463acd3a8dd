"""Laser-parameter and noise-floor estimate from ground returns (the wet-ground model of M. Bijelic as used by
Robo3D, described in spec §2.7 step 3; re-implemented from that description). Shared by wet ground and the
snowfall noise floor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import linregress

GROUND_CLASSES = (9, 10, 11, 12)  # road, parking, sidewalk, other-ground (learning ids)


@dataclass(frozen=True)
class LaserEstimate:
    a: float  # normalised intensity ≈ a·d + b
    b: float
    noise_a: float  # noise threshold line (before × noise_floor)
    noise_b: float
    power_factor: float = 15.0

    def power(self, d: np.ndarray) -> np.ndarray:
        """P_out(d) = power_factor·(a·d + b)."""
        return self.power_factor * (self.a * d + self.b)

    def threshold(self, d: np.ndarray, noise_floor: float) -> np.ndarray:
        return noise_floor * (self.noise_a * d + self.noise_b)


def incidence(xyz: np.ndarray) -> np.ndarray:
    """Flat-earth incidence angle θ = arccos(−z/‖p‖)."""
    return np.arccos(np.clip(-xyz[:, 2] / np.maximum(np.linalg.norm(xyz, axis=1), 1e-9), -1.0, 1.0))


def estimate(distance: np.ndarray, normalised: np.ndarray, n_ground: int | None = None) -> LaserEstimate:
    """Linear fit n ≈ a·d + b, then the noise line from the least-populated (d, n) histogram bins."""
    fit = linregress(distance, normalised)
    a, b = float(fit.slope), float(fit.intercept)
    n_ground = len(distance) if n_ground is None else n_ground
    top = float(np.max(normalised))
    if top <= 5.0:
        return LaserEstimate(a, b, a, b)
    counts, d_edges, n_edges = np.histogram2d(
        distance, normalised, bins=(50, 2555), range=((10, 70), (5, top))
    )
    counts[counts == 0] = n_ground
    chosen = np.argpartition(counts, 2, axis=1)[:, 0]
    lower = n_edges[chosen]
    centres = 0.5 * (d_edges[:-1] + d_edges[1:])
    keep = lower > 5
    if keep.sum() > 3:
        noise = linregress(centres[keep], lower[keep])
        return LaserEstimate(a, b, float(noise.slope), float(noise.intercept))
    return LaserEstimate(a, b, a, b)
