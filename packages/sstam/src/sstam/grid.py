"""Patch grid and temporal windows (spec §2.4, proposed).

Spatial grid, border-aligned: along each axis the starts are ``round(linspace(0, D − P, ceil(D / P)))``, so every
pixel is covered (1920×1080 at P = 64 → 30 × 17 patches; 176×144 → 3 × 3).

Temporal windows of ``L`` frames: starts ``0, L, 2L, …`` while a whole window fits, plus a last window ending at
the last frame when ``T`` is not a multiple of ``L``. That is the same number of windows as the spatial rule
(``ceil(T / L)``), every frame is covered and only the last window overlaps, and windows can be scored as frames
stream in without knowing ``T`` in advance (T = 9, L = 8 → starts {0, 1}). ``T < L`` gives no window.
"""

from __future__ import annotations

import math

import numpy as np


def grid_starts(length: int, patch: int) -> np.ndarray:
    """Border-aligned starts along one axis (``length ≥ patch``)."""
    if length < patch:
        raise ValueError(f"a side of {length} px is smaller than the patch size {patch}")
    count = math.ceil(length / patch)
    return np.round(np.linspace(0, length - patch, count)).astype(np.int64)


def patch_grid(height: int, width: int, patch: int) -> np.ndarray:
    """``int64 [N, 2]`` (y, x) top-left corners of the border-aligned grid, row-major."""
    ys, xs = grid_starts(height, patch), grid_starts(width, patch)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1)


def grid_shape(height: int, width: int, patch: int) -> tuple[int, int]:
    return math.ceil(height / patch), math.ceil(width / patch)


def window_starts(num_frames: int, length: int) -> np.ndarray:
    """Starts of the temporal windows (see the module docstring); empty when ``num_frames < length``."""
    if num_frames < length:
        return np.zeros(0, dtype=np.int64)
    starts = list(range(0, num_frames - length + 1, length))
    if starts[-1] + length < num_frames:
        starts.append(num_frames - length)
    return np.asarray(starts, dtype=np.int64)


def extract_patches(frames: np.ndarray, corners: np.ndarray, patch: int) -> np.ndarray:
    """Frames ``[T, H, W, C]`` → patches ``[T, N, P, P, C]`` at ``corners`` (a view-based gather, no loops)."""
    windows = np.lib.stride_tricks.sliding_window_view(frames, (patch, patch), axis=(1, 2))
    # windows: [T, H-P+1, W-P+1, C, P, P]
    picked = windows[:, corners[:, 0], corners[:, 1]]  # [T, N, C, P, P]
    return np.ascontiguousarray(picked.transpose(0, 1, 3, 4, 2))


def region_means(maps: np.ndarray, corners: np.ndarray, patch: int) -> np.ndarray:
    """Mean of ``maps [T, H, W]`` over each P×P region at ``corners`` → ``[T, N]`` (integral images, float64)."""
    maps = np.asarray(maps, dtype=np.float64)
    t, h, w = maps.shape
    integral = np.zeros((t, h + 1, w + 1), dtype=np.float64)
    integral[:, 1:, 1:] = maps.cumsum(axis=1).cumsum(axis=2)
    y0, x0 = corners[:, 0], corners[:, 1]
    y1, x1 = y0 + patch, x0 + patch
    total = integral[:, y1, x1] - integral[:, y0, x1] - integral[:, y1, x0] + integral[:, y0, x0]
    return total / float(patch * patch)
