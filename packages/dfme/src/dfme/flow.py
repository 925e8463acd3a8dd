"""Optical flow between the aligned onset and apex frames and optical strain (spec §2.7), for STSTNet and
Off-ApexNet.

Strain of the flow (u, v): ε_xx = ∂u/∂x, ε_yy = ∂v/∂y, ε_xy = ε_yx = ½(∂u/∂y + ∂v/∂x),
|ε| = sqrt(ε_xx² + ε_yy² + ε_xy² + ε_yx²) (central differences). u, v and |ε| are resized to the model input
(28×28, ``INTER_AREA``) with u, v scaled by out/in.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

FLOWS = ("farneback", "tvl1")


def farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Dense Farnebäck flow (H, W, 2) with the parameters of spec §2.7 (pyr 0.5, 3 levels, window 15, 3 iters,
    poly_n 5, poly_sigma 1.2)."""
    return cv2.calcOpticalFlowFarneback(_u8(prev), _u8(nxt), None, 0.5, 3, 15, 3, 5, 1.2, 0)


@functools.lru_cache(maxsize=1)
def _tvl1() -> cv2.optflow.DualTVL1OpticalFlow:
    return cv2.optflow.DualTVL1OpticalFlow_create()


def tvl1(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """Dense TV-L1 flow (H, W, 2), OpenCV contrib's default parameters (≈ 0.4 s per 112×112 pair on one core)."""
    return _tvl1().calc(_u8(prev), _u8(nxt), None)


def _u8(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim == 3:
        frame = cv2.cvtColor(np.ascontiguousarray(frame.astype(np.uint8)), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(frame.astype(np.uint8))


def optical_flow(prev: np.ndarray, nxt: np.ndarray, method: str = "farneback") -> np.ndarray:
    """Flow from ``prev`` to ``nxt`` (grayscale or RGB uint8) by ``method`` ∈ :data:`FLOWS`."""
    if method == "farneback":
        return farneback(prev, nxt)
    if method == "tvl1":
        return tvl1(prev, nxt)
    raise ValueError(f"unknown flow method {method!r} (methods: {', '.join(FLOWS)})")


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """|ε| (H, W) of a flow field (H, W, 2) by central differences (one-sided at the border)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    du_dy, du_dx = np.gradient(u)
    dv_dy, dv_dx = np.gradient(v)
    shear = 0.5 * (du_dy + dv_dx)
    return np.sqrt(du_dx**2 + dv_dy**2 + 2 * shear**2)


def flow_features(
    onset: np.ndarray, apex: np.ndarray, method: str = "farneback", out_size: int = 28
) -> np.ndarray:
    """(3, out, out) float32: u, v (scaled by out/in) and |ε| of the onset→apex flow, resized with INTER_AREA."""
    flow = optical_flow(onset, apex, method)
    strain = optical_strain(flow)
    scale = out_size / flow.shape[1]
    maps = [
        cv2.resize(flow[..., 0], (out_size, out_size), interpolation=cv2.INTER_AREA) * scale,
        cv2.resize(flow[..., 1], (out_size, out_size), interpolation=cv2.INTER_AREA) * scale,
        cv2.resize(strain.astype(np.float32), (out_size, out_size), interpolation=cv2.INTER_AREA),
    ]
    return np.stack(maps).astype(np.float32)
