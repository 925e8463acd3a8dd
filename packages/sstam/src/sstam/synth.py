"""Synthetic perceptual-artifact (PEA) generators and pan clips (spec §3a; generator ideas and knobs proposed).

Spatial generators take an RGB ``uint8 [H, W, 3]`` image and a severity level (0 = clean, exactly the input);
temporal generators make clips ``uint8 [T, H, W, 3]``. Everything is NumPy/OpenCV and deterministic given a seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np
from scipy import fft as sfft

SPATIAL_PEAS = ("blurring", "blocking", "bleeding", "ringing")
TEMPORAL_PEAS = ("flickering", "floating")
PEAS = SPATIAL_PEAS + TEMPORAL_PEAS

#: severity parameters per level (level 0 = clean); † marks the spec's proposed discretisations
BLUR_SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
BLOCK_QUALITIES = (None, 95, 50, 25, 10, 5)
RING_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.9)  # †
BLEED_LEVELS = ((1, 0), (2, 1), (4, 1), (4, 2), (8, 3), (8, 4))  # † (downsampling factor f, shift d)
FLICKER_GAINS = (0.0, 0.02, 0.04, 0.08)  # † amplitude A of g_t = 1 + A·sin(2πft)
FLICKER_QUALITIES = (None, 50, 25, 10)  # † JPEG quality alternating with 90
FLOAT_DELTAS = (0, 1, 2, 3)  # px/frame of relative drift
RING_EDGE_DENSITY = 0.05  # †
RING_CANNY = (100, 200)  # †

JPEG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
)
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def num_levels(pea: str) -> int:
    return {
        "blurring": len(BLUR_SIGMAS),
        "blocking": len(BLOCK_QUALITIES),
        "bleeding": len(BLEED_LEVELS),
        "ringing": len(RING_FRACTIONS),
        "flickering": len(FLICKER_GAINS),
        "floating": len(FLOAT_DELTAS),
    }[pea]


# --------------------------------------------------------------------------------------------- helpers
def luma(image: np.ndarray) -> np.ndarray:
    """Y = 0.299 R + 0.587 G + 0.114 B as float64."""
    return np.asarray(image, np.float64) @ LUMA_WEIGHTS


def add_luma_delta(image: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Add a luma change to all three channels (chroma differences unchanged), rounded and clipped."""
    out = np.asarray(image, np.float64) + delta[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def jpeg_quant_table(quality: int) -> np.ndarray:
    """The JPEG luminance table scaled to ``quality`` (IJG scaling), entries ≥ 1."""
    quality = int(np.clip(quality, 1, 100))
    scale = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return np.clip(np.floor((JPEG_LUMA * scale + 50.0) / 100.0), 1, 255)


def _to_blocks(plane: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad a plane to multiples of 8 (edge) and view it as ``[nby, nbx, 8, 8]`` blocks."""
    h, w = plane.shape
    ph, pw = (-h) % 8, (-w) % 8
    padded = np.pad(plane, ((0, ph), (0, pw)), mode="edge")
    nby, nbx = padded.shape[0] // 8, padded.shape[1] // 8
    return padded.reshape(nby, 8, nbx, 8).transpose(0, 2, 1, 3), (h, w)


def _from_blocks(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    nby, nbx = blocks.shape[:2]
    return blocks.transpose(0, 2, 1, 3).reshape(nby * 8, nbx * 8)[: shape[0], : shape[1]]


def zigzag_rank() -> np.ndarray:
    """``[8, 8]`` rank of each DCT coefficient in JPEG zig-zag order (0 = DC)."""
    order = sorted(
        ((i, j) for i in range(8) for j in range(8)),
        key=lambda ij: (ij[0] + ij[1], ij[0] if (ij[0] + ij[1]) % 2 else ij[1]),
    )
    rank = np.zeros((8, 8), dtype=np.int64)
    for r, (i, j) in enumerate(order):
        rank[i, j] = r
    return rank


# --------------------------------------------------------------------------------------------- spatial generators
def blur(image: np.ndarray, level: int, seed: int = 0) -> np.ndarray:
    """Gaussian blur of luma and chroma (all channels), σ = BLUR_SIGMAS[level]."""
    sigma = BLUR_SIGMAS[level]
    if sigma == 0:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def jpeg_block_quantise(image: np.ndarray, quality: int) -> np.ndarray:
    """8×8 block DCT of luma quantised with the JPEG luminance table at ``quality`` (chroma untouched)."""
    y = luma(image)
    blocks, shape = _to_blocks(y - 128.0)
    coeffs = sfft.dctn(blocks, axes=(-2, -1), norm="ortho")
    table = jpeg_quant_table(quality)
    quantised = np.round(coeffs / table) * table
    back = _from_blocks(sfft.idctn(quantised, axes=(-2, -1), norm="ortho"), shape) + 128.0
    return add_luma_delta(image, back - y)


def blocking(image: np.ndarray, level: int, seed: int = 0) -> np.ndarray:
    """JPEG-style luma quantisation at q ∈ {95, 50, 25, 10, 5}."""
    quality = BLOCK_QUALITIES[level]
    if quality is None:
        return image.copy()
    return jpeg_block_quantise(image, quality)


def edge_blocks(image: np.ndarray, threshold: float = RING_EDGE_DENSITY) -> np.ndarray:
    """``bool [nby, nbx]``: 8×8 blocks whose Canny(100, 200) edge density exceeds ``threshold``."""
    gray = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, *RING_CANNY) > 0
    blocks, _ = _to_blocks(edges.astype(np.float64))
    return blocks.mean(axis=(-2, -1)) > threshold


def ringing(image: np.ndarray, level: int, seed: int = 0) -> np.ndarray:
    """Zero the highest-frequency fraction of the 63 AC DCT coefficients of luma in edge blocks only (Gibbs
    oscillation along edges; blocks below the edge-density threshold are unchanged exactly)."""
    fraction = RING_FRACTIONS[level]
    if fraction == 0:
        return image.copy()
    y = luma(image)
    blocks, shape = _to_blocks(y)
    coeffs = sfft.dctn(blocks, axes=(-2, -1), norm="ortho")
    removed = int(round(fraction * 63))
    keep = zigzag_rank() < 64 - removed
    filtered = sfft.idctn(coeffs * keep, axes=(-2, -1), norm="ortho")
    mask = edge_blocks(image)
    delta_blocks = np.where(mask[..., None, None], filtered - blocks, 0.0)
    delta = _from_blocks(delta_blocks, shape)
    out = add_luma_delta(image, delta)
    untouched = (
        _from_blocks(np.broadcast_to(~mask[..., None, None], blocks.shape).astype(np.float64), shape) > 0
    )
    out[untouched] = image[untouched]
    return out


def bleeding(image: np.ndarray, level: int, seed: int = 0) -> np.ndarray:
    """Colour bleeding: Cb/Cr box-downsampled by f, nearest-upsampled, shifted by d px (luma kept)."""
    factor, shift = BLEED_LEVELS[level]
    if factor == 1 and shift == 0:
        return image.copy()
    h, w = image.shape[:2]
    ycc = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    small = cv2.resize(ycc[..., 1:], (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    if shift:
        up = cv2.copyMakeBorder(up, shift, 0, shift, 0, cv2.BORDER_REPLICATE)[:h, :w]
    # rebuild RGB from the original luma and the new chroma (float, so luma moves only by rounding)
    y = (np.asarray(image, np.float32) @ LUMA_WEIGHTS.astype(np.float32))[..., None]
    kr = 1.403 * (up[..., 0] - 128.0)
    kb = 1.773 * (up[..., 1] - 128.0)
    kg = -(0.299 * kr + 0.114 * kb) / 0.587  # keeps luma: 0.299·kr + 0.587·kg + 0.114·kb = 0
    contrib = np.stack([kr, kg, kb], axis=-1)
    # out-of-gamut pixels: scale their chroma towards grey instead of clipping (clipping would move luma)
    limit = np.where(contrib > 0, 255.0 - y, y)
    room = limit / np.maximum(np.abs(contrib), 1e-6)
    scale = np.minimum(room.min(axis=-1, keepdims=True), 1.0)
    return np.clip(np.rint(y + scale * contrib), 0, 255).astype(np.uint8)


SPATIAL_GENERATORS: dict[str, Callable[[np.ndarray, int, int], np.ndarray]] = {
    "blurring": blur,
    "blocking": blocking,
    "bleeding": bleeding,
    "ringing": ringing,
}


def degrade(image: np.ndarray, pea: str, level: int, seed: int = 0) -> np.ndarray:
    """Apply the spatial generator of ``pea`` at ``level`` (0 = the input, exactly)."""
    if pea not in SPATIAL_GENERATORS:
        raise ValueError(f"unknown spatial PEA {pea!r} (expected one of {', '.join(SPATIAL_PEAS)})")
    if not 0 <= level < num_levels(pea):
        raise ValueError(f"{pea} has levels 0..{num_levels(pea) - 1}, got {level}")
    return SPATIAL_GENERATORS[pea](image, level, seed)


# --------------------------------------------------------------------------------------------- pans and clips
def pan_trajectory(height: int, width: int, size: int, frames: int, fps: float = 25.0) -> np.ndarray:
    """``float [T, 2]`` (x, y) top-left positions of a ``size``² window panning over a still (spec §3a).

    Reference (astronaut, 512²): ``x = 64 + 60·sin(2πt/2)``, ``y = 64 + 40·t``; other stills scale the
    amplitudes to their margins, clamped to the image.
    """
    mx, my = width - size, height - size
    if mx < 0 or my < 0:
        raise ValueError(f"a {width}x{height} still is smaller than the {size}² pan window")
    duration = frames / fps
    t = np.arange(frames) / fps
    ax = min(60.0, 0.45 * mx)
    xc = float(np.clip(64.0, ax, mx - ax)) if mx > 0 else 0.0
    vy = min(40.0, 0.9 * my / max(duration, 1e-9))
    y0 = float(np.clip(64.0, 0.0, my - vy * duration))
    x = xc + ax * np.sin(2 * np.pi * t / 2.0)
    y = y0 + vy * t
    return np.stack([np.clip(x, 0, mx), np.clip(y, 0, my)], axis=1)


def crop_subpixel(image: np.ndarray, x: float, y: float, width: int, height: int) -> np.ndarray:
    """A ``height×width`` crop with top-left (x, y), bilinear at sub-pixel positions."""
    centre = (x + (width - 1) / 2.0, y + (height - 1) / 2.0)
    return cv2.getRectSubPix(np.ascontiguousarray(image), (width, height), centre)


def pan_clip(still: np.ndarray, size: int = 256, frames: int = 64, fps: float = 25.0) -> np.ndarray:
    """``uint8 [T, size, size, 3]`` pan over ``still`` (the ladder source)."""
    path = pan_trajectory(still.shape[0], still.shape[1], size, frames, fps)
    return np.stack([crop_subpixel(still, x, y, size, size) for x, y in path])


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Real JPEG (OpenCV, 4:2:0) encode + decode at ``quality``."""
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 99.0 if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def flicker_quant(
    clip: np.ndarray, quality: int, period: int = 1, high: int = 90, phase: int = 0
) -> np.ndarray:
    """Quantisation-strength flicker: JPEG quality alternates ``high`` ↔ ``quality`` every ``period`` frames."""
    out = np.empty_like(clip)
    for t, frame in enumerate(clip):
        q = high if ((t + phase) // period) % 2 == 0 else quality
        out[t] = jpeg_roundtrip(frame, q)
    return out


def constant_quant(clip: np.ndarray, quality: int) -> np.ndarray:
    return np.stack([jpeg_roundtrip(f, quality) for f in clip])


def matched_constant_quality(clip: np.ndarray, flickered: np.ndarray) -> int:
    """The constant JPEG quality whose mean per-frame PSNR is closest to that of ``flickered`` (equal mean
    quality control, spec §3a), by bisection over q ∈ [2, 98]."""
    target = np.mean([psnr(c, f) for c, f in zip(clip, flickered, strict=True)])
    lo, hi = 2, 98
    while hi - lo > 1:
        mid = (lo + hi) // 2
        value = np.mean([psnr(c, jpeg_roundtrip(c, mid)) for c in clip])
        if value < target:
            lo = mid
        else:
            hi = mid
    low = np.mean([psnr(c, jpeg_roundtrip(c, lo)) for c in clip])
    high = np.mean([psnr(c, jpeg_roundtrip(c, hi)) for c in clip])
    return lo if abs(low - target) <= abs(high - target) else hi


def flicker_gain(clip: np.ndarray, amplitude: float, period: int = 2, phase: float = np.pi / 2) -> np.ndarray:
    """Luminance-gain flicker ``g_t = 1 + A·sin(2π t / period + phase)`` on all channels (the default phase
    starts at the crest, so a period of 2 frames alternates 1 ± A)."""
    t = np.arange(len(clip))
    gain = 1.0 + amplitude * np.sin(2 * np.pi * t / period + phase)
    out = np.asarray(clip, np.float64) * gain[:, None, None, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def flicker_level(clip: np.ndarray, level: int, kind: str = "gain", period: int = 2) -> np.ndarray:
    """Flicker at a severity level: ``gain`` (A = FLICKER_GAINS[level]) or ``quant`` (q = FLICKER_QUALITIES)."""
    if level == 0:
        return clip.copy()
    if kind == "gain":
        return flicker_gain(clip, FLICKER_GAINS[level], period)
    return flicker_quant(clip, FLICKER_QUALITIES[level], max(1, period // 2))


def floating_clip(
    background: np.ndarray,
    texture: np.ndarray,
    size: int,
    frames: int,
    camera: tuple[int, int],
    drift: tuple[int, int],
    region: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A ``size``² integer pan (camera velocity ``camera`` px/frame) over ``background`` with a ``region``² window
    of ``texture`` attached to the scene; the texture *content* drifts by ``drift`` px/frame relative to the scene
    (``drift = (0, 0)``: consistent motion; ``drift = camera``: the content is frozen on screen, since the
    scene moves by −camera px/frame on screen and the content by −camera + drift).

    Returns the clip ``uint8 [T, size, size, 3]`` and the region's box (x, y, w, h) in frame 0.
    """
    vx, vy = camera
    dx, dy = drift
    span_x, span_y = abs(vx) * (frames - 1), abs(vy) * (frames - 1)
    bh, bw = background.shape[:2]
    if bw < size + span_x or bh < size + span_y:
        raise ValueError("background too small for this camera motion")
    x0 = int(rng.integers(0, bw - size - span_x + 1)) + (span_x if vx < 0 else 0)
    y0 = int(rng.integers(0, bh - size - span_y + 1)) + (span_y if vy < 0 else 0)
    # region position inside frame 0 (kept inside every frame since it moves with the scene)
    rx = int(rng.integers(4, size - region - 4 + 1))
    ry = int(rng.integers(4, size - region - 4 + 1))
    th, tw = texture.shape[:2]
    tspan_x, tspan_y = abs(dx) * (frames - 1), abs(dy) * (frames - 1)
    tx0 = int(rng.integers(0, tw - region - tspan_x + 1)) + (tspan_x if dx > 0 else 0)
    ty0 = int(rng.integers(0, th - region - tspan_y + 1)) + (tspan_y if dy > 0 else 0)
    clip = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        cx, cy = x0 + vx * t, y0 + vy * t
        frame = background[cy : cy + size, cx : cx + size].copy()
        # the region is fixed in scene coordinates: its frame position moves with the camera (−v·t) ...
        fx, fy = rx - vx * t, ry - vy * t
        # ... while its content is sampled at an offset that drifts by −δ·t (content moves by +δ px/frame)
        sx, sy = tx0 - dx * t, ty0 - dy * t
        patch = texture[sy : sy + region, sx : sx + region]
        x_lo, y_lo = max(fx, 0), max(fy, 0)
        x_hi, y_hi = min(fx + region, size), min(fy + region, size)
        if x_hi > x_lo and y_hi > y_lo:
            frame[y_lo:y_hi, x_lo:x_hi] = patch[y_lo - fy : y_hi - fy, x_lo - fx : x_hi - fx]
        clip[t] = frame
    return clip, (rx, ry, region, region)


def phase_shift(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Translation (dx, dy) that maps grey ``a`` onto ``b`` (OpenCV phase correlation)."""
    (dx, dy), _ = cv2.phaseCorrelate(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return float(dx), float(dy)
