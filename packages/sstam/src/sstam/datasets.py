"""Synthetic training/evaluation sets built from the stills (spec §3a): spatial patches and temporal cubes.

Labels follow spec §2.5: for the PEA a sample was made for, positive when its level ≥ ``min_positive_level``,
ignored (−1, masked out of the loss) below that, negative at level 0; samples of another PEA are negatives.
A positive patch in which the generator changed (almost) nothing (mean |x' − x| < ``visible_threshold`` grey
levels, e.g. a blurred flat sky or a ringing level on a patch without edges) is ignored rather than called
positive (proposed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from paperlab_core.errors import ConfigError
from sstam.stills import GREY_STILLS, TEXTURES, content_of, is_grey, load_still
from sstam.synth import (
    FLICKER_GAINS,
    FLICKER_QUALITIES,
    FLOAT_DELTAS,
    SPATIAL_PEAS,
    blur,
    constant_quant,
    degrade,
    flicker_gain,
    flicker_quant,
    floating_clip,
    matched_constant_quality,
    num_levels,
)

IGNORE = -1.0


@dataclass
class PatchSet:
    """Spatial samples: ``patches uint8 [N, P, P, 3]``, ``labels float32 [N, 4]`` (1 / 0 / −1 = ignore)."""

    patches: np.ndarray
    labels: np.ndarray
    pea: np.ndarray  # index into SPATIAL_PEAS, −1 for clean samples
    level: np.ndarray
    content: np.ndarray
    heads: tuple[str, ...] = SPATIAL_PEAS

    def __len__(self) -> int:
        return len(self.patches)

    def subset(self, index: np.ndarray) -> PatchSet:
        return PatchSet(
            self.patches[index],
            self.labels[index],
            self.pea[index],
            self.level[index],
            self.content[index],
            self.heads,
        )

    @staticmethod
    def concat(parts: Sequence[PatchSet]) -> PatchSet:
        return PatchSet(
            *(
                np.concatenate([getattr(p, k) for p in parts])
                for k in ("patches", "labels", "pea", "level", "content")
            ),
            parts[0].heads,
        )


@dataclass
class CubeSet:
    """Temporal samples: ``cubes uint8 [N, L+1, P, P, 3]`` (frame 0 is the predecessor of the window),
    ``labels float32 [N, 2]`` (flickering, floating), ``kind`` names the generator of each sample."""

    cubes: np.ndarray
    labels: np.ndarray
    kind: np.ndarray
    level: np.ndarray
    content: np.ndarray
    has_prev: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def __len__(self) -> int:
        return len(self.cubes)

    def subset(self, index: np.ndarray) -> CubeSet:
        return CubeSet(
            self.cubes[index],
            self.labels[index],
            self.kind[index],
            self.level[index],
            self.content[index],
            self.has_prev[index],
        )


def _split_counts(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


def _positions(height: int, width: int, patch: int, count: int, rng: np.random.Generator) -> np.ndarray:
    ys = rng.integers(0, height - patch + 1, size=count)
    xs = rng.integers(0, width - patch + 1, size=count)
    return np.stack([ys, xs], axis=1)


def _gather(image: np.ndarray, corners: np.ndarray, patch: int) -> np.ndarray:
    offsets = np.arange(patch)
    rows = corners[:, 0, None, None] + offsets[None, :, None]
    cols = corners[:, 1, None, None] + offsets[None, None, :]
    return image[rows, cols]


def build_patch_set(
    stills: Sequence[str],
    n_per_level: int,
    patch: int = 64,
    seed: int = 0,
    peas: Sequence[str] = SPATIAL_PEAS,
    min_positive_level: int = 2,
    visible_threshold: float = 1.0,
) -> PatchSet:
    """``n_per_level`` patches per (PEA, level) spread over ``stills`` (clean level-0 patches once per PEA
    count, shared); grey stills make no colour-bleeding samples."""
    rng = np.random.default_rng(seed)
    heads = SPATIAL_PEAS
    parts: list[PatchSet] = []
    jobs: list[tuple[str, int]] = [("clean", 0)]
    jobs += [(pea, level) for pea in peas for level in range(1, num_levels(pea))]
    for pea, level in jobs:
        names = [s for s in stills if not (pea == "bleeding" and is_grey(s))]
        count = n_per_level * (len(peas) if pea == "clean" else 1)
        for name, n in zip(names, _split_counts(count, len(names)), strict=True):
            if n == 0:
                continue
            still = load_still(name)
            corners = _positions(still.shape[0], still.shape[1], patch, n, rng)
            clean = _gather(still, corners, patch)
            labels = np.zeros((n, len(heads)), np.float32)
            if pea == "clean":
                patches, pea_index = clean, -1
            else:
                degraded = degrade(still, pea, level, seed)
                patches = _gather(degraded, corners, patch)
                pea_index = heads.index(pea)
                if level < min_positive_level:
                    labels[:, pea_index] = IGNORE
                else:
                    change = np.abs(patches.astype(np.int16) - clean.astype(np.int16)).mean(axis=(1, 2, 3))
                    labels[:, pea_index] = np.where(change >= visible_threshold, 1.0, IGNORE)
            parts.append(
                PatchSet(
                    patches,
                    labels,
                    np.full(n, pea_index),
                    np.full(n, level),
                    np.full(n, content_of(name), dtype=object),
                    heads,
                )
            )
    return PatchSet.concat(parts)


# --------------------------------------------------------------------------------------------- temporal cubes
def _pan_cube(
    still: np.ndarray, size: int, frames: int, velocity: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    vx, vy = velocity
    span_x, span_y = abs(vx) * (frames - 1), abs(vy) * (frames - 1)
    h, w = still.shape[:2]
    x0 = int(rng.integers(0, w - size - span_x + 1)) + (span_x if vx < 0 else 0)
    y0 = int(rng.integers(0, h - size - span_y + 1)) + (span_y if vy < 0 else 0)
    return np.stack(
        [still[y0 + vy * t : y0 + vy * t + size, x0 + vx * t : x0 + vx * t + size] for t in range(frames)]
    )


def _subpixel_pan_cube(
    still: np.ndarray, size: int, frames: int, rng: np.random.Generator, vmax: float = 3.0
) -> np.ndarray:
    """A pan at a real-valued velocity (each of vx, vy uniform in ±``vmax`` px/frame), bilinear crops at
    sub-pixel positions — the kind of motion of the ladders' pans (:func:`sstam.synth.pan_clip`), whose
    sharpness varies with the fractional offset from frame to frame (ours, 0.5.2)."""
    from sstam.synth import crop_subpixel

    vx, vy = (float(v) for v in rng.uniform(-vmax, vmax, 2))
    span_x, span_y = abs(vx) * (frames - 1), abs(vy) * (frames - 1)
    h, w = still.shape[:2]
    x0 = float(rng.uniform(0, max(0.0, w - size - span_x - 1))) + (span_x if vx < 0 else 0.0)
    y0 = float(rng.uniform(0, max(0.0, h - size - span_y - 1))) + (span_y if vy < 0 else 0.0)
    return np.stack([crop_subpixel(still, x0 + vx * t, y0 + vy * t, size, size) for t in range(frames)])


def _velocity(rng: np.random.Generator, vmax: int = 3) -> tuple[int, int]:
    return int(rng.integers(-vmax, vmax + 1)), int(rng.integers(-vmax, vmax + 1))


def _drift(rng: np.random.Generator, delta: int) -> tuple[int, int]:
    directions = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, 1), (1, -1), (-1, -1)]
    dx, dy = directions[int(rng.integers(len(directions)))]
    return dx * delta, dy * delta


def _texture_for(
    name: str, pool: Sequence[str], rng: np.random.Generator, load: Callable[[str], np.ndarray] = load_still
) -> np.ndarray:
    return load(str(rng.choice([p for p in pool if p != name] or list(pool))))


def dihedral(image: np.ndarray, t: int) -> np.ndarray:
    """The ``t``-th of the 8 dihedral transforms (0–3: rotations by 90°·t, 4–7: the same then a left-right flip)."""
    image = np.rot90(image, t % 4)
    return image[:, ::-1] if t >= 4 else image


def augment_still(image: np.ndarray, rng: np.random.Generator, min_side: int = 128) -> np.ndarray:
    """A random view of a training image for the temporal generator (ours, 0.5): zoom 0.5–1 (never below
    ``min_side``), a crop of 60–100 % of each side (at least ``min_side``), one of the 8 dihedral transforms and
    a colour jitter (saturation 0.5–1.5, contrast 0.7–1.3 about the mean, brightness ±20, channel gains
    0.9–1.1). Applied to training backgrounds and floating textures only; held-out cubes are never augmented."""
    h, w = image.shape[:2]
    low = max(0.5, min_side / min(h, w))
    if low < 1.0:
        scale = float(rng.uniform(low, 1.0))
        size = (max(min_side, round(w * scale)), max(min_side, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    ch = int(rng.integers(min(h, max(min_side, int(0.6 * h))), h + 1))
    cw = int(rng.integers(min(w, max(min_side, int(0.6 * w))), w + 1))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    image = image[y : y + ch, x : x + cw]
    image = dihedral(image, int(rng.integers(8)))
    f = image.astype(np.float32)
    grey = f.mean(axis=2, keepdims=True)
    f = grey + float(rng.uniform(0.5, 1.5)) * (f - grey)
    mean = float(f.mean())
    f = (f - mean) * float(rng.uniform(0.7, 1.3)) + mean + float(rng.uniform(-20, 20))
    f = f * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    return np.ascontiguousarray(np.clip(np.rint(f), 0, 255).astype(np.uint8))


def fractal_noise(size: int = 384, seed: int = 0) -> np.ndarray:
    """A procedural colour 1/f^β image (β/2 ∈ [0.9, 1.5] on the amplitude spectrum): smooth, cloud- or sky-like
    regions at random contrast, a content unrelated to any still (ours, 0.5; the held-out floating misses were
    subtle drifts of smooth regions)."""
    rng = np.random.default_rng(seed)
    fy, fx = np.fft.fftfreq(size)[:, None], np.fft.fftfreq(size)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    amplitude = radius ** (-float(rng.uniform(0.9, 1.5)))
    amplitude[0, 0] = 0.0
    fields = []
    for _ in range(3):
        spectrum = amplitude * (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size)))
        field = np.fft.ifft2(spectrum).real
        fields.append((field - field.mean()) / (field.std() + 1e-12))
    luma = fields[0] * float(rng.uniform(15, 50))
    chroma = rng.normal(0, 0.4, (3, 2)) * float(rng.uniform(5, 25))
    rgb = luma[..., None] + np.stack(fields[1:], axis=-1) @ chroma.T + rng.uniform(60, 190, 3)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def procedural_images(count: int, size: int = 384, seed: int = 0) -> dict[str, np.ndarray]:
    """``count`` generated training images for the temporal generator (ours, 0.5), alternating dead-leaves
    (sharp occluding discs) and 1/f noise (smooth): ``{"deadleaves_t0": ..., "noise_t1": ..., ...}``."""
    images = {}
    for i in range(count):
        if i % 2 == 0:
            images[f"deadleaves_t{i}"] = dead_leaves(size, seed=2000 + i)
        else:
            images[f"noise_t{i}"] = fractal_noise(size, seed=2000 + i)
    return images


def check_cube_options(
    quant_share: float = 0.5,
    quant_levels: Sequence[int] | None = None,
    static_quant: float = 0.0,
    codec_static: float = 0.0,
    codec_codecs: Sequence[str] = ("x264", "x265"),
    codec_crf: Sequence[int] = (28, 51),
    codec_qp: Sequence[int] = (32, 51),
    codec_motion: str = "integer",
    prefix: str = "",
) -> None:
    """The one check of :func:`build_cube_set`'s training-cube options, shared by the library and the CLI
    (``prefix="data.temporal_"`` names the options as ``sstam train`` spells them). Raises
    :class:`~paperlab_core.errors.ConfigError` — a ``ValueError`` for library callers, one line and exit status 1
    on the command line. ``quant_levels=None`` means every level (the CLI's ``[]``)."""
    for key, value in (
        ("quant_share", quant_share),
        ("static_quant", static_quant),
        ("codec_static", codec_static),
    ):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{prefix}{key} must be in [0, 1], got {value}")
    top = len(FLICKER_QUALITIES) - 1
    if quant_levels is not None and (not quant_levels or any(not 1 <= lv <= top for lv in quant_levels)):
        raise ConfigError(f"{prefix}quant_levels takes flicker levels 1–{top}, got {list(quant_levels)}")
    if codec_motion not in ("integer", "subpixel"):
        raise ConfigError(f"{prefix}codec_motion must be integer or subpixel, got {codec_motion!r}")
    if codec_static > 0.0:
        bad = [c for c in codec_codecs if c not in ("x264", "x265")]
        if bad or not codec_codecs:
            raise ConfigError(f"{prefix}codec_codecs takes x264 and/or x265, got {list(codec_codecs)}")
        for key, span, low in (("codec_crf", codec_crf, 0), ("codec_qp", codec_qp, 0)):
            if len(span) != 2 or not low <= span[0] <= span[1] <= 51:
                raise ConfigError(
                    f"{prefix}{key} must be a range [lowest, highest] within 0–51, got {list(span)}"
                )


def codec_negative(
    pan: np.ndarray, codec: str, value: int, lead: int = 0, preset: str = "medium"
) -> np.ndarray:
    """A codec-made flicker negative (ours, 0.5.2): ``pan`` (RGB ``[lead + T, H, W, 3]``, even H, W) encoded by
    x264 at CRF ``value`` or x265 at QP ``value`` — ONE constant setting for the whole clip, the codec's own
    I/P/B rhythm only — and decoded in memory; the first ``lead`` frames are dropped, so the window sits at a
    random phase of the GOP and B-frame pattern, as the windows of a scored clip do."""
    from sstam.codec import codec_roundtrip_in_memory

    kind = "crf" if codec == "x264" else "qp"
    return codec_roundtrip_in_memory(pan, codec, **{kind: int(value)}, preset=preset)[lead:]


def build_cube_set(
    stills: Sequence[str],
    n_per_class: int,
    frames: int = 8,
    patch: int = 64,
    seed: int = 0,
    min_positive_level: int = 1,
    textures: Sequence[str] | None = None,
    prev_drop: float = 0.15,
    visible_threshold: float = 1.0,
    procedural: int = 0,
    augment: bool = False,
    quant_share: float = 0.5,
    quant_levels: Sequence[int] | None = None,
    static_quant: float = 0.0,
    codec_static: float = 0.0,
    codec_codecs: Sequence[str] = ("x264", "x265"),
    codec_crf: Sequence[int] = (28, 51),
    codec_qp: Sequence[int] = (32, 51),
    codec_motion: str = "integer",
) -> CubeSet:
    """Flicker and floating positives and their negatives, ``n_per_class`` each (spec §3a).

    * flicker +: luminance-gain oscillation (A ∈ {0.02, 0.04, 0.08}, period 2/4/8 frames) or JPEG quality
      alternating 90 ↔ q (q ∈ {50, 25, 10}) every k ∈ {1, 2, 4} frames, on integer pans;
    * flicker −: clean pans, constant JPEG quality at the **same mean per-frame PSNR** as a flicker positive of
      the same cube, a constant gain, constant blur (the blur-only distractor);
    * floating +: a textured region whose content drifts δ ∈ {1, 2, 3} px/frame against the scene, or is frozen
      on screen while the camera pans;
    * floating −: the same composite with consistent motion (δ = 0) and plain pans.

    Floating textures (ours, 0.4): any other still of the split (``textures``; before 0.4 the grey textures of the
    split when it had any — brick, grass, gravel for training, the held-out stills themselves for testing). A
    floating positive whose region differs from its consistent twin by less than ``visible_threshold`` grey
    levels on average (a drifting smooth region: no visible artifact) gets an ignored floating label, as the
    spatial positives do.

    Cubes hold ``frames + 1`` frames: the first is the predecessor used by the frame-difference stream; for a
    fraction ``prev_drop`` it is a copy of frame 1 (a window at the start of a clip has no predecessor).

    More training content (ours, 0.5): ``procedural`` generated images (:func:`procedural_images`) join the
    backgrounds and textures, and ``augment`` draws a random view (:func:`augment_still`) of every background
    and texture a cube uses. With neither, the cubes are exactly those of 0.4 (the held-out sets are built so).

    Quantisation-flicker emphasis (ours, 0.5.1; defaults = the cubes above): ``quant_share`` of the flicker
    pairs are quantisation pairs (flicker + equal-mean-quality control; 0.5 = every other pair, as before; the
    rest gain pairs, a deterministic Bresenham schedule), ``quant_levels`` the flicker levels they draw from
    (``None``: 1–3 uniformly), and a fraction ``static_quant`` of the distractors is a pan at one constant JPEG
    quality q ∈ [5, 90] (static block artefacts, flicker −) instead of the clean / blur-only pan.

    Codec-made flicker negatives (ours, 0.5.2; off by default): a fraction ``codec_static`` of the distractors
    (drawn first; the others follow ``static_quant`` and the clean / blur-only rule above) is a pan encoded by one of ``codec_codecs`` at ONE constant x264 CRF (drawn
    uniformly from the range ``codec_crf``) or x265 QP (``codec_qp``) and decoded (:func:`codec_negative`,
    in memory, once per cube), flicker − and floating − (kind ``codec_static``): the codec's own frame-type
    rhythm at constant quality is not flicker. ``codec_motion``: ``integer`` pans (as the other cubes) or
    ``subpixel`` pans at a real-valued velocity with bilinear crops, like the ladders' pans. Options are checked
    by :func:`check_cube_options`.
    """
    check_cube_options(
        quant_share, quant_levels, static_quant, codec_static, codec_codecs, codec_crf, codec_qp, codec_motion
    )
    rng = np.random.default_rng(seed)
    total = frames + 1
    generated = procedural_images(procedural) if procedural else {}
    textures = list(textures) if textures is not None else list(stills)
    textures += [name for name in generated if name not in textures]
    backgrounds = list(stills) + list(generated)

    def load(name: str) -> np.ndarray:
        image = generated[name] if name in generated else load_still(name)
        return augment_still(image, rng, min_side=2 * patch) if augment else image

    cubes, labels, kinds, levels, contents = [], [], [], [], []

    def add(cube: np.ndarray, flick: float, floating: float, kind: str, level: int, name: str) -> None:
        cubes.append(cube)
        labels.append((flick, floating))
        kinds.append(kind)
        levels.append(level)
        contents.append(content_of(name))

    def flick_label(level: int) -> float:
        return 1.0 if level >= min_positive_level else IGNORE

    for i in range(n_per_class):
        name = backgrounds[i % len(backgrounds)]
        still = load(name)
        base = _pan_cube(still, patch, total, _velocity(rng), rng)
        if int((i + 1) * quant_share) == int(i * quant_share):  # luminance-gain flicker (0.5: even i)
            level = 1 + int(rng.integers(len(FLICKER_GAINS) - 1))
            period = int(rng.choice([2, 4, 8]))
            add(
                flicker_gain(base, FLICKER_GAINS[level], period, float(rng.uniform(0, 2 * np.pi))),
                flick_label(level),
                0.0,
                "flicker_gain",
                level,
                name,
            )
            gain = 1.0 + float(rng.uniform(-0.08, 0.08))
            add(
                flicker_gain(base, 0.0, 2)
                if gain == 1.0
                else np.clip(np.rint(base * gain), 0, 255).astype(np.uint8),
                0.0,
                0.0,
                "constant_gain",
                0,
                name,
            )
        else:  # quantisation flicker and its equal-mean-quality control
            if quant_levels is None:
                level = 1 + int(rng.integers(len(FLICKER_QUALITIES) - 1))
            else:
                level = int(rng.choice(list(quant_levels)))
            period = int(rng.choice([1, 2, 4]))
            flickered = flicker_quant(
                base, FLICKER_QUALITIES[level], period, phase=int(rng.integers(0, 2 * period))
            )
            add(flickered, flick_label(level), 0.0, "flicker_quant", level, name)
            add(
                constant_quant(base, matched_constant_quality(base, flickered)),
                0.0,
                0.0,
                "constant_quant",
                0,
                name,
            )
        # floating positive and its consistent-motion twin
        name_f = backgrounds[(i + 1) % len(backgrounds)]
        still_f = load(name_f)
        texture = _texture_for(name_f, textures, rng, load)
        region = int(rng.choice([r for r in (24, 32, 48) if r <= patch - 16] or [patch // 2]))
        camera = _velocity(rng)
        if rng.random() < 0.25 and camera != (0, 0):
            drift, level = camera, max(1, min(3, max(abs(camera[0]), abs(camera[1]))))
            kind = "floating_frozen"
        else:
            level = int(rng.choice(FLOAT_DELTAS[1:]))
            drift, kind = _drift(rng, level), "floating_drift"
        seed_i = int(rng.integers(2**31))
        positive, _ = floating_clip(
            still_f, texture, patch, total, camera, drift, region, np.random.default_rng(seed_i)
        )
        negative, _ = floating_clip(
            still_f, texture, patch, total, camera, (0, 0), region, np.random.default_rng(seed_i)
        )
        # region-mean change: the composites are identical outside the region
        change = (
            np.abs(positive.astype(np.float32) - negative.astype(np.float32)).mean() * (patch / region) ** 2
        )
        add(positive, 0.0, 1.0 if change >= visible_threshold else IGNORE, kind, level, name_f)
        add(negative, 0.0, 0.0, "floating_consistent", 0, name_f)
        # distractors shared by both heads: plain pan and constant blur (or a constant-quality JPEG pan)
        if codec_static > 0.0 and rng.random() < codec_static:
            codec = str(codec_codecs[int(rng.integers(len(codec_codecs)))])
            low, high = codec_crf if codec == "x264" else codec_qp
            value, lead = int(rng.integers(low, high + 1)), int(rng.integers(0, frames + 1))
            if codec_motion == "subpixel":
                pan = _subpixel_pan_cube(still_f, patch, lead + total, rng)
            else:
                pan = _pan_cube(still_f, patch, lead + total, _velocity(rng), rng)
            add(codec_negative(pan, codec, value, lead), 0.0, 0.0, "codec_static", 0, name_f)
        elif static_quant > 0.0 and rng.random() < static_quant:
            pan = _pan_cube(still_f, patch, total, _velocity(rng), rng)
            add(constant_quant(pan, int(rng.integers(5, 91))), 0.0, 0.0, "static_quant", 0, name_f)
        elif i % 2 == 0:
            add(_pan_cube(still_f, patch, total, _velocity(rng), rng), 0.0, 0.0, "clean", 0, name_f)
        else:
            sigma_level = int(rng.integers(2, 6))
            add(np.stack([blur(f, sigma_level) for f in base]), 0.0, 0.0, "blur_only", 0, name)
    array = np.stack(cubes)
    has_prev = rng.random(len(array)) >= prev_drop
    array[~has_prev, 0] = array[~has_prev, 1]
    return CubeSet(
        array,
        np.asarray(labels, np.float32),
        np.asarray(kinds),
        np.asarray(levels),
        np.asarray(contents, dtype=object),
        has_prev,
    )


def grey_textures() -> tuple[str, ...]:
    return tuple(t for t in TEXTURES if t in GREY_STILLS)


# --------------------------------------------------------------------------------------------- fresh patches (ours)
def dead_leaves(size: int = 384, seed: int = 0, discs: int = 1500) -> np.ndarray:
    """A procedural colour "dead leaves" image (occluding discs with power-law radii): sharp edges at all
    scales and flat interiors, content unrelated to any still (ours, an extra training content)."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
    radii = np.clip((rng.pareto(2.0, discs) + 1.0) * 3.0, 2, size / 4).astype(int)
    for r in radii:
        centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(r), colour, -1, lineType=cv2.LINE_AA)
    # mild texture so that flat interiors are not perfectly flat
    noise = cv2.GaussianBlur(rng.normal(0, 6, (size, size)).astype(np.float32), (0, 0), 1.5)
    return np.clip(image + noise[..., None], 0, 255).astype(np.uint8)


def chroma_420_roundtrip(image: np.ndarray) -> np.ndarray:
    """RGB → YCrCb with Cb/Cr halved (area) and upsampled again (bilinear) → RGB: the chroma a decoded 4:2:0
    video has (ours; the stills are 4:4:4, every decoded codec frame is not)."""
    h, w = image.shape[:2]
    ycc = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YCrCb)
    small = cv2.resize(ycc[..., 1:], (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    ycc[..., 1:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


CODEC_HEADS = (SPATIAL_PEAS.index("blurring"), SPATIAL_PEAS.index("blocking"))
CODEC_INDEX = len(SPATIAL_PEAS)  # ``pea`` index of a codec-made training patch


def codec_last_frame(
    image: np.ndarray, codec: str, kind: str, value: int, frames: int = 6, preset: str = "medium"
) -> np.ndarray:
    """The last decoded frame of a short pan that ends on ``image`` (2 px right, 1 px down per frame, reflected
    borders) encoded with ``codec`` at CRF/QP ``value``: a P/B frame aligned with ``image`` (ours)."""
    from sstam.codec import codec_roundtrip

    h, w = image.shape[:2]
    clip = np.stack(
        [
            cv2.warpAffine(
                np.ascontiguousarray(image),
                np.float32([[1, 0, 2 * (frames - 1 - t)], [0, 1, frames - 1 - t]]),
                (w, h),
                borderMode=cv2.BORDER_REFLECT,
            )
            for t in range(frames)
        ]
    )
    return codec_roundtrip(clip, codec, **{kind: int(value)}, preset=preset)[-1]


class DegradedPool:
    """Every (content, scale) × (PEA, level) image degraded once; batches are fresh random crops of them (ours).

    The fixed patch sets of :func:`build_patch_set` were memorised (2300 patches of 9 stills: training loss
    falls, held-out AUC stays near chance). Here each batch draws new positions, one of the 8 dihedral
    transforms (applied after the degradation, so the 8×8 grid is kept), contents at several scales (rescaled
    before the degradation) and procedural dead-leaves images. Targets are **severity regressions** (ours):
    own head ``level / (levels − 1)``, other heads 0, a positive the generator left unchanged (mean |Δ| below
    ``visible_threshold`` grey levels) ignored. ``chroma_420`` passes every image (clean and degraded) through
    a 4:2:0 chroma round trip after the degradation, as a decoder would (off in the 0.2 bundle; see the notebook).

    ``codecs`` (ours, 0.3): every content also goes through the x264 CRF / x265 QP ladders
    (:func:`codec_last_frame`); a codec patch at rung r of R has target r / R on the blurring **and** blocking
    heads (what x264/x265 leave at high CRF/QP: deblocked smoothing and block edges) and is ignored by the
    ringing and bleeding heads (a codec makes some of both, with no ground truth here).
    """

    def __init__(
        self,
        stills: Sequence[str],
        scales: Sequence[float] = (1.0, 0.6),
        procedural: int = 2,
        peas: Sequence[str] = SPATIAL_PEAS,
        patch: int = 64,
        visible_threshold: float = 1.0,
        clean_fraction: float = 0.2,
        seed: int = 0,
        chroma_420: bool = False,
        codecs: Sequence[str] = (),
        codec_crf: Sequence[int] = (28, 35, 42, 51),
        codec_qp: Sequence[int] = (32, 37, 42, 51),
        codec_frames: int = 6,
        codec_preset: str = "medium",
    ) -> None:
        self.patch = patch
        self.visible_threshold = visible_threshold
        self.clean_fraction = clean_fraction
        self.peas = tuple(peas)
        self.rng = np.random.default_rng(seed)
        contents: list[tuple[str, np.ndarray, bool]] = []
        for name in stills:
            still = load_still(name)
            for scale in scales:
                image = still
                if scale != 1.0:
                    size = (int(still.shape[1] * scale), int(still.shape[0] * scale))
                    image = cv2.resize(still, size, interpolation=cv2.INTER_AREA)
                if min(image.shape[:2]) >= patch:
                    contents.append((content_of(name), image, is_grey(name)))
        for i in range(procedural):
            contents.append((f"deadleaves{i}", dead_leaves(384, seed=1000 + i), False))
        if codecs:  # yuv420p encoders need even sizes
            contents = [(n, im[: im.shape[0] // 2 * 2, : im.shape[1] // 2 * 2], g) for n, im, g in contents]
        video = chroma_420_roundtrip if chroma_420 else (lambda image: image)
        self.contents = [c[0] for c in contents]
        self.grey = np.asarray([c[2] for c in contents])
        self.clean = [video(c[1]) for c in contents]
        self.degraded: dict[tuple[str, int], list[np.ndarray]] = {}
        for pea in self.peas:
            for level in range(1, num_levels(pea)):
                self.degraded[(pea, level)] = [
                    video(degrade(image, pea, level, seed)) if not (pea == "bleeding" and grey) else image
                    for _, image, grey in contents
                ]
        self.jobs = [(pea, level) for pea in self.peas for level in range(1, num_levels(pea))]
        self.codec_levels: dict[str, int] = {}
        if codecs:
            from sstam.codec import ladder_specs

            specs = ladder_specs(codecs, codec_crf, codec_qp)
            for codec in codecs:
                self.codec_levels[f"codec:{codec}"] = sum(1 for c, _, _ in specs if c == codec)
            rungs: dict[str, int] = {}
            for codec, kind, value in specs:
                rung = rungs[codec] = rungs.get(codec, 0) + 1
                self.degraded[(f"codec:{codec}", rung)] = [
                    codec_last_frame(image, codec, kind, value, codec_frames, codec_preset)
                    for _, image, _ in contents
                ]
                self.jobs.append((f"codec:{codec}", rung))

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``n`` fresh patches: ``uint8 [n, P, P, 3]``, soft targets ``[n, 4]``, PEA index (−1 clean), level."""
        rng, p = self.rng, self.patch
        patches = np.empty((n, p, p, 3), np.uint8)
        labels = np.zeros((n, len(SPATIAL_PEAS)), np.float32)
        pea_index = np.full(n, -1)
        levels = np.zeros(n, np.int64)
        for i in range(n):
            if rng.random() < self.clean_fraction:
                job = None
                c = int(rng.integers(len(self.clean)))
            else:
                job = self.jobs[int(rng.integers(len(self.jobs)))]
                pool = np.flatnonzero(~self.grey) if job[0] == "bleeding" else np.arange(len(self.clean))
                c = int(rng.choice(pool))
            clean = self.clean[c]
            y = int(rng.integers(0, clean.shape[0] - p + 1))
            x = int(rng.integers(0, clean.shape[1] - p + 1))
            crop = clean[y : y + p, x : x + p]
            if job is not None:
                pea, level = job
                out = self.degraded[job][c][y : y + p, x : x + p]
                change = np.abs(out.astype(np.int16) - crop.astype(np.int16)).mean()
                visible = change >= self.visible_threshold
                if pea in self.codec_levels:  # rung severity on the blurring and blocking heads (ours)
                    labels[i] = IGNORE
                    for k in CODEC_HEADS:
                        labels[i, k] = level / self.codec_levels[pea] if visible else IGNORE
                    pea_index[i] = CODEC_INDEX
                else:
                    k = SPATIAL_PEAS.index(pea)
                    labels[i, k] = level / (num_levels(pea) - 1) if visible else IGNORE
                    pea_index[i] = k
                levels[i] = level
                crop = out
            patches[i] = dihedral(crop, int(rng.integers(8)))
        return patches, labels, pea_index, levels
