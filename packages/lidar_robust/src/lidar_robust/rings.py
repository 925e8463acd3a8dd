"""Ring (laser) ids of a SemanticKITTI scan, which stores none (spec §2.2).

``file_order`` is Robo3D's ``get_kitti_ringID``: the azimuth fraction ``u = (atan2(y, x) mod 2π)/(2π)`` wraps from
> 0.8 to < 0.2 at every new ring, so the ring id is the running count of wraps, clipped to 63. It needs the points
in the sensor's order (ring-major, increasing azimuth); any reordering invalidates it, so compute it once on the
clean scan and carry it. ``elevation_bins`` is the channel estimator of Robo3D's snow script.
"""

from __future__ import annotations

import numpy as np

RING_METHODS = ("file_order", "elevation_bins")
MAX_RING = 63


def azimuth_fraction(points: np.ndarray) -> np.ndarray:
    """``u = ½(1 + yaw/π)`` with ``yaw = −atan2(y, −x)``: the counter-clockwise azimuth from +x in [0, 1]."""
    yaw = -np.arctan2(points[:, 1], -points[:, 0])
    return 0.5 * (1.0 + yaw / np.pi)


def ring_ids(points: np.ndarray, method: str = "file_order", clip: bool = True) -> np.ndarray:
    """int64 ring id per point (``file_order``: 0 = the first ring in the file = the highest beam on KITTI)."""
    points = np.asarray(points)
    if method == "file_order":
        u = azimuth_fraction(points)
        start = np.zeros(len(u), dtype=np.int64)
        if len(u) > 1:
            start[1:] = (u[:-1] > 0.8) & (u[1:] < 0.2)
        ring = np.cumsum(start)
        return np.minimum(ring, MAX_RING) if clip else ring
    if method == "elevation_bins":
        return elevation_channels(points)
    raise ValueError(f"unknown ring method {method!r} (expected one of {', '.join(RING_METHODS)})")


def elevation_channels(
    points: np.ndarray, fov_up_deg: float = 3.0, fov_down_deg: float = -25.0, beams: int = 64
) -> np.ndarray:
    """``clip(floor((1 − (pitch − fov_down)/fov)·H), 0, H − 1)`` with ``pitch = arcsin(z/‖p‖)``."""
    depth = np.linalg.norm(points[:, :3], axis=1)
    pitch = np.arcsin(np.clip(points[:, 2] / np.maximum(depth, 1e-9), -1.0, 1.0))
    fov_down = np.radians(fov_down_deg)
    fov = np.radians(fov_up_deg) - fov_down
    channel = np.floor((1.0 - (pitch - fov_down) / fov) * beams)
    return np.clip(channel, 0, beams - 1).astype(np.int64)


def ring_statistics(points: np.ndarray, ring: np.ndarray) -> dict[str, object]:
    """Rings found, points per ring and median elevation per ring (degrees)."""
    elevation = np.degrees(np.arctan2(points[:, 2], np.linalg.norm(points[:, :2], axis=1)))
    ids, counts = np.unique(ring, return_counts=True)
    medians = [float(np.median(elevation[ring == i])) for i in ids]
    return {
        "rings": int(len(ids)),
        "points_per_ring_min": int(counts.min()) if len(counts) else 0,
        "points_per_ring_max": int(counts.max()) if len(counts) else 0,
        "median_elevation_deg": medians,
        "elevation_decreasing": bool(np.all(np.diff(medians) < 0)),
    }
