"""Heat-map PNGs (spec §4 ``--saliency-png``): the saliency map as a jet overlay (α 0.5) and, per PEA, the
patch-level ``p^k`` map over the frame (patches not analysed stay uncoloured)."""

from __future__ import annotations

import cv2
import numpy as np

ALPHA = 0.5


def jet_overlay(
    frame_rgb: np.ndarray, heat: np.ndarray, alpha: float = ALPHA, valid: np.ndarray | None = None
) -> np.ndarray:
    """Blend a [0, 1] heat map (jet colour map) over an RGB frame; returns RGB ``uint8``."""
    heat8 = np.clip(np.rint(np.nan_to_num(heat, nan=0.0) * 255), 0, 255).astype(np.uint8)
    colour = cv2.cvtColor(cv2.applyColorMap(heat8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blended = (1 - alpha) * frame_rgb.astype(np.float32) + alpha * colour.astype(np.float32)
    if valid is not None:
        blended = np.where(valid[..., None], blended, frame_rgb.astype(np.float32))
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def patch_map(
    shape: tuple[int, int], corners: np.ndarray, values: np.ndarray, patch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean of the patch values covering each pixel (overlaps averaged) and the covered mask."""
    total = np.zeros(shape, np.float64)
    count = np.zeros(shape, np.float64)
    for (y, x), value in zip(corners, values, strict=True):
        if np.isfinite(value):
            total[y : y + patch, x : x + patch] += value
            count[y : y + patch, x : x + patch] += 1
    covered = count > 0
    return np.where(covered, total / np.maximum(count, 1), 0.0), covered


def encode_png(image_rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()
