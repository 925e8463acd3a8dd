"""Bird's-eye-view images of scans coloured by label (Pillow only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lidar_robust.formats import Scan, learning_labels

#: one RGB colour per learning class (0 = grey)
PALETTE = np.array([
    (120, 120, 120), (100, 150, 245), (100, 230, 245), (30, 60, 150), (80, 30, 180), (0, 0, 255),
    (255, 30, 30), (255, 40, 200), (150, 30, 90), (255, 0, 255), (255, 150, 255), (75, 0, 75),
    (175, 0, 75), (255, 200, 0), (255, 120, 50), (0, 175, 0), (135, 60, 0), (150, 240, 80),
    (255, 240, 150), (255, 0, 0),
], dtype=np.uint8)  # fmt: skip


def bev(scan: Scan, extent: float = 40.0, size: int = 600) -> Image.Image:
    image = np.full((size, size, 3), 255, dtype=np.uint8)
    xy = scan.points[:, :2]
    pixel = ((xy + extent) / (2 * extent) * size).astype(int)
    ok = (pixel >= 0).all(1) & (pixel < size).all(1)
    labels = learning_labels(scan.labels) if scan.labels is not None else np.zeros(len(scan), int)
    depth = np.linalg.norm(scan.points[:, :3], axis=1)
    order = np.argsort(-depth[ok])  # nearer points drawn last
    px, colour = pixel[ok][order], PALETTE[labels[ok][order]]
    image[size - 1 - px[:, 1], px[:, 0]] = colour
    return Image.fromarray(image)


def bev_pair(before: Scan, after: Scan, path: str | Path, extent: float, left: str, right: str) -> Path:
    a, b = bev(before, extent), bev(after, extent)
    canvas = Image.new("RGB", (a.width * 2 + 10, a.height + 24), "white")
    canvas.paste(a, (0, 24))
    canvas.paste(b, (a.width + 10, 24))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), f"{left} ({len(before)} points)", fill="black")
    draw.text((a.width + 14, 4), f"{right} ({len(after)} points)", fill="black")
    path = Path(path)
    canvas.save(path)
    return path
