"""The embedded default: synthetic micro-expressions on real faces (spec §3a).

Subjects are the face crops of ``skimage.data.lfw_subset()`` (and the astronaut's face), upsampled, tinted and
pasted with a soft mask onto a crop of an offline scikit-image texture; only subjects whose face the detector of
§2.3 finds on the neutral frame are kept. Each clip applies one emotion's AU-like displacement field (a sum of
Gaussian bumps on canonical face regions, peak 0.5–2 px at the 112-px face scale) with a raised-cosine
onset → apex → offset profile, at 500/300/200 fps (Part A/B/C analogues), plus nuisances: sub-pixel head drift,
blinks, sensor noise (σ = 2 grey levels) and ±2 % brightness flicker. Classes follow the long-tailed proportions
of §3a with exact quotas. Everything is a deterministic function of the seed: clip ``i`` is rendered from its own
``SeedSequence`` child, so clips can be rendered in any order, lazily or in parallel.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from dfme.face import DetectorConfig, detect_faces
from dfme.labels import EMOTIONS, format_aus

#: normalised face-box coordinates of the canonical regions (spec §3a)
LANDMARKS = {
    "inner_brow_l": (0.38, 0.30), "inner_brow_r": (0.62, 0.30),
    "outer_brow_l": (0.25, 0.28), "outer_brow_r": (0.75, 0.28),
    "eye_l": (0.35, 0.40), "eye_r": (0.65, 0.40),
    "cheek_l": (0.30, 0.60), "cheek_r": (0.70, 0.60),
    "nose_l": (0.42, 0.58), "nose_r": (0.58, 0.58),
    "upper_lip": (0.50, 0.70),
    "lip_corner_l": (0.38, 0.75), "lip_corner_r": (0.62, 0.75),
}  # fmt: skip
#: AU → bumps (landmark, unit direction in image coordinates, y down); "l" is the image-left side
AU_BUMPS: dict[int, tuple[tuple[str, tuple[float, float]], ...]] = {
    1: (("inner_brow_l", (0.0, -1.0)), ("inner_brow_r", (0.0, -1.0))),
    2: (("outer_brow_l", (0.0, -1.0)), ("outer_brow_r", (0.0, -1.0))),
    4: (("inner_brow_l", (0.53, 0.85)), ("inner_brow_r", (-0.53, 0.85))),
    6: (("cheek_l", (0.0, -1.0)), ("cheek_r", (0.0, -1.0))),
    7: (("eye_l", (0.0, -1.0)), ("eye_r", (0.0, -1.0))),
    9: (("nose_l", (0.0, -1.0)), ("nose_r", (0.0, -1.0))),
    10: (("upper_lip", (0.0, -1.0)),),
    12: (("lip_corner_l", (-0.71, -0.71)), ("lip_corner_r", (0.71, -0.71))),
    14: (("lip_corner_l", (-0.89, -0.45)), ("lip_corner_r", (0.89, -0.45))),
    15: (("lip_corner_l", (0.0, 1.0)), ("lip_corner_r", (0.0, 1.0))),
    20: (("lip_corner_l", (-1.0, 0.0)), ("lip_corner_r", (1.0, 0.0))),
}
SYNTHETIC_AUS = tuple(sorted(AU_BUMPS))
#: emotion → (core AUs, secondary AUs dropped with probability ``secondary_drop``)
CLASS_AUS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "happiness": ((12,), (6,)),
    "anger": ((4,), (7,)),
    "contempt": ((14,), ()),
    "disgust": ((9,), (10,)),
    "fear": ((4, 20), (1, 2)),
    "sadness": ((15,), (1,)),
    "surprise": ((2,), (1,)),
}
UNILATERAL = {"contempt"}
#: long-tailed class proportions (spec §3a)
CLASS_PROPORTIONS = {
    "disgust": 0.30, "surprise": 0.20, "happiness": 0.15, "fear": 0.12, "anger": 0.10, "sadness": 0.08,
    "contempt": 0.05,
}  # fmt: skip
PARTS = ("A", "B", "C")
PART_FPS = {"A": 500, "B": 300, "C": 200}
FACE_SCALE = 112.0  # amplitudes are given at this face width


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator parameters (all recorded in ``meta.json``)."""

    subjects: int = 60
    clips_per_subject: tuple[int, int] = (6, 12)
    frame_size: int = 160
    face_size: tuple[int, int] = (100, 124)
    part_proportions: tuple[float, float, float] = (0.15, 0.13, 0.72)
    duration_s: tuple[float, float] = (0.1, 0.5)
    padding_s: tuple[float, float] = (0.02, 0.06)
    apex_fraction: tuple[float, float] = (0.3, 0.6)
    amplitude_px: tuple[float, float] = (0.5, 2.0)
    bump_sigma: float = 0.06
    secondary_drop: float = 0.3
    noise_sigma: float = 2.0
    flicker: float = 0.02
    flicker_hz: tuple[float, float] = (2.0, 10.0)
    drift_px: float = 0.3
    blink_probability: float = 0.3
    blink_s: float = 0.1
    include_astronaut: bool = True
    fixed_frames: int | None = None
    seed: int = 0
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Subject:
    """A pasted face: neutral frame (H, W, 3) float32 in [0, 255], face box [x, y, s, s], soft mask (H, W)."""

    subject_id: str
    source: str
    base: np.ndarray
    box: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render one clip (and its annotation row)."""

    index: int
    sample_id: str
    subject: int
    emotion: str
    aus: tuple[int, ...]
    part: str
    fps: int
    n_frames: int
    onset: int
    apex: int
    offset: int
    amplitude: float
    side: int  # contempt: −1 = image-left corner only, +1 = image-right corner only, 0 otherwise
    blink_frame: int | None

    def row(self, subject_id: str) -> dict:
        return {
            "sample_id": self.sample_id, "subject_id": subject_id, "part": self.part, "fps": self.fps,
            "onset": self.onset, "apex": self.apex, "offset": self.offset, "emotion": self.emotion,
            "aus": format_aus(self.aus),
        }  # fmt: skip


@functools.lru_cache(maxsize=1)
def _face_bank() -> tuple[tuple[str, np.ndarray], ...]:
    """(name, float32 face crop in [0, 1], (h, w) or (h, w, 3)) for the 100 lfw faces and the astronaut."""
    from skimage import data

    lfw = data.lfw_subset()[:100].astype(np.float32)
    faces = [(f"lfw{i:03d}", lfw[i]) for i in range(len(lfw))]
    astronaut = data.astronaut()[56:176, 165:285].astype(np.float32) / 255.0  # around the detected face box
    faces.append(("astronaut", astronaut))
    return tuple(faces)


@functools.lru_cache(maxsize=1)
def _textures() -> tuple[np.ndarray, ...]:
    from skimage import data

    return tuple(t.astype(np.float32) / 255.0 for t in (data.brick(), data.grass(), data.gravel()))


def _paste(
    face: np.ndarray, rng: np.random.Generator, config: SyntheticConfig
) -> tuple[np.ndarray, tuple, np.ndarray]:
    size = config.frame_size
    side = int(rng.integers(config.face_size[0], config.face_size[1] + 1))
    side = min(side, size)
    crop = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    if crop.ndim == 2:
        tint = np.array([1.0, 0.86, 0.74]) * rng.uniform(0.92, 1.08, 3)
        crop = crop[..., None] * tint[None, None, :]
    crop = np.clip(crop * rng.uniform(0.85, 1.15), 0.0, 1.0)
    texture = _textures()[int(rng.integers(len(_textures())))]
    y, x = rng.integers(0, texture.shape[0] - size, 2)
    background = texture[y : y + size, x : x + size]
    background = 0.25 + 0.45 * background[..., None] * rng.uniform(0.8, 1.2, 3)[None, None, :]
    margin = size - side
    x0, y0 = (int(rng.integers(0, margin + 1)), int(rng.integers(0, margin + 1))) if margin > 0 else (0, 0)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    radius = np.sqrt(((xx + 0.5) / side - 0.5) ** 2 / 0.5**2 + ((yy + 0.5) / side - 0.5) ** 2 / 0.55**2)
    soft = np.clip((1.0 - radius) / 0.08, 0.0, 1.0)
    mask = np.zeros((size, size), np.float32)
    mask[y0 : y0 + side, x0 : x0 + side] = soft
    frame = background.astype(np.float32).copy()
    frame[y0 : y0 + side, x0 : x0 + side] = (
        soft[..., None] * crop + (1 - soft[..., None]) * frame[y0 : y0 + side, x0 : x0 + side]
    )
    return (frame * 255.0).astype(np.float32), (x0, y0, side, side), mask


def _iou(a: np.ndarray, b: tuple) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def build_subjects(config: SyntheticConfig) -> tuple[list[Subject], dict]:
    """The first ``config.subjects`` faces (in a seeded order) whose pasted face the detector finds; returns the
    subjects and a report (tried, kept, rejected names)."""
    bank = list(_face_bank())
    if not config.include_astronaut:
        bank = [f for f in bank if f[0] != "astronaut"]
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    order = rng.permutation(len(bank))
    subjects: list[Subject] = []
    rejected: list[str] = []
    tried = 0
    for index in order:
        if len(subjects) >= config.subjects:
            break
        name, face = bank[index]
        tried += 1
        face_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, int(index)]))
        base, box, mask = _paste(face, face_rng, config)
        found = detect_faces(np.clip(np.rint(base), 0, 255).astype(np.uint8), config.detector)
        if len(found) == 0 or _iou(found[0], box) < 0.3:
            rejected.append(name)
            continue
        subjects.append(Subject(f"sub{len(subjects):03d}", name, base, box, mask))
    report = {"tried": tried, "kept": len(subjects), "rejected": rejected, "bank": len(bank)}
    return subjects, report


def _quota(proportions: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``proportions · total`` (largest remainder)."""
    raw = proportions / proportions.sum() * total
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def plan_clips(config: SyntheticConfig, n_subjects: int) -> list[ClipSpec]:
    """Clip specifications: clips per subject, labels and parts by exact quotas (seeded shuffle), timing,
    amplitude, AU set (secondary AUs dropped with probability 0.3), contempt side, blink."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3]))
    lo, hi = config.clips_per_subject
    per_subject = rng.integers(lo, hi + 1, n_subjects)
    subject_of = np.repeat(np.arange(n_subjects), per_subject)
    total = len(subject_of)
    emotions = list(CLASS_PROPORTIONS)
    label_counts = _quota(np.array([CLASS_PROPORTIONS[e] for e in emotions]), total)
    labels = rng.permutation(np.repeat(np.arange(len(emotions)), label_counts))
    part_counts = _quota(np.asarray(config.part_proportions, np.float64), total)
    parts = rng.permutation(np.repeat(np.arange(3), part_counts))
    specs = []
    counter = np.zeros(n_subjects, np.int64)
    for i in range(total):
        clip_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 4, i]))
        emotion = emotions[labels[i]]
        part = PARTS[parts[i]]
        fps = PART_FPS[part]
        core, secondary = CLASS_AUS[emotion]
        kept = tuple(a for a in secondary if clip_rng.random() >= config.secondary_drop)
        duration = clip_rng.uniform(*config.duration_s)
        me_frames = max(3, int(round(duration * fps)))
        pre = int(round(clip_rng.uniform(*config.padding_s) * fps))
        post = int(round(clip_rng.uniform(*config.padding_s) * fps))
        if config.fixed_frames is not None:
            me_frames = min(me_frames, config.fixed_frames - 2)
            pre = (config.fixed_frames - me_frames) // 2
            post = config.fixed_frames - me_frames - pre
        onset, offset = pre, pre + me_frames - 1
        apex = onset + int(round(clip_rng.uniform(*config.apex_fraction) * (me_frames - 1)))
        n_frames = pre + me_frames + post
        blink = None
        if clip_rng.random() < config.blink_probability:
            blink = int(clip_rng.integers(0, n_frames))
        side = int(clip_rng.choice([-1, 1])) if emotion in UNILATERAL else 0
        s = int(subject_of[i])
        specs.append(
            ClipSpec(
                i,
                f"sub{s:03d}_{counter[s]:02d}",
                s,
                emotion,
                tuple(sorted(core + kept)),
                part,
                fps,
                n_frames,
                onset,
                apex,
                offset,
                float(clip_rng.uniform(*config.amplitude_px)),
                side,
                blink,
            )
        )
        counter[s] += 1
    return specs


def expression_field(spec: ClipSpec, box: tuple, size: int, sigma: float = 0.06) -> np.ndarray:
    """Displacement field (2, H, W) in pixels at the apex: Gaussian bumps (σ = ``sigma``·face width) on the
    regions of the clip's AUs, scaled so that the peak magnitude equals ``spec.amplitude`` at the 112-px face
    scale (i.e. ``amplitude · face_width / 112`` pixels in the frame)."""
    x0, y0, side, _ = box
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    field = np.zeros((2, size, size))
    s = sigma * side
    for au in spec.aus:
        for landmark, direction in AU_BUMPS[au]:
            if spec.side and (landmark.endswith("_l") != (spec.side < 0)):
                continue  # unilateral: keep only the chosen side
            cx, cy = LANDMARKS[landmark]
            cx, cy = x0 + cx * side, y0 + cy * side
            bump = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
            field[0] += direction[0] * bump
            field[1] += direction[1] * bump
    peak = np.sqrt((field**2).sum(0)).max()
    if peak > 0:
        field *= spec.amplitude * side / FACE_SCALE / peak
    return field


def temporal_profile(spec: ClipSpec) -> np.ndarray:
    """Raised cosine: 0 before onset, 0 → 1 from onset to apex, 1 → 0 from apex to offset, 0 after."""
    t = np.arange(spec.n_frames, dtype=np.float64)
    p = np.zeros_like(t)
    rise = (t >= spec.onset) & (t <= spec.apex)
    if spec.apex > spec.onset:
        p[rise] = 0.5 * (1 - np.cos(np.pi * (t[rise] - spec.onset) / (spec.apex - spec.onset)))
    else:
        p[spec.apex] = 1.0
    fall = (t > spec.apex) & (t <= spec.offset)
    if spec.offset > spec.apex:
        p[fall] = 0.5 * (1 + np.cos(np.pi * (t[fall] - spec.apex) / (spec.offset - spec.apex)))
    return p


@functools.lru_cache(maxsize=1)
def _normal_lut() -> np.ndarray:
    from scipy.special import ndtri

    lut = ndtri((np.arange(256) + 0.5) / 256)
    return (lut / lut.std()).astype(np.float32)


def gaussian_noise(rng: np.random.Generator, shape: tuple, sigma: float) -> np.ndarray:
    """Zero-mean Gaussian noise of standard deviation ``sigma`` (float32), drawn as uniform bytes mapped through
    the normal quantile function (a 256-level discretised Gaussian with unit variance, tails cut at ±2.9σ;
    ~10× cheaper than ``standard_normal``, which dominated the rendering time)."""
    count = int(np.prod(shape))
    width = shape[-1] if len(shape) > 1 else count
    codes = rng.integers(0, 256, size=(count // width, width), dtype=np.uint8)
    return (cv2.LUT(codes, _normal_lut()) * np.float32(sigma)).reshape(shape)


def render_clip(subject: Subject, spec: ClipSpec, config: SyntheticConfig) -> np.ndarray:
    """(n_frames, H, W, 3) uint8 frames of one clip."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 5, spec.index]))
    size = config.frame_size
    n = spec.n_frames
    field = expression_field(spec, subject.box, size, config.bump_sigma).astype(np.float32)
    profile = temporal_profile(spec).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    drift = (np.linspace(0.0, 1.0, n) * rng.uniform(0, config.drift_px))[:, None] * [
        np.cos(angle),
        np.sin(angle),
    ]
    drift = drift.astype(np.float32)
    t = np.arange(n) / spec.fps
    phase = rng.uniform(0, 2 * np.pi)
    gain = (1.0 + config.flicker * np.sin(2 * np.pi * rng.uniform(*config.flicker_hz) * t + phase)).astype(
        np.float32
    )
    blink = np.zeros(n, np.float32)
    if spec.blink_frame is not None:
        half = config.blink_s * spec.fps / 2
        d = np.abs(np.arange(n) - spec.blink_frame) / max(half, 1.0)
        blink = np.where(d < 1, 0.5 * (1 + np.cos(np.pi * d)), 0.0).astype(np.float32)
    x0, y0, side, _ = subject.box
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    eyes = np.zeros((size, size), np.float32)
    for name in ("eye_l", "eye_r"):
        cx, cy = LANDMARKS[name]
        cx, cy = x0 + cx * side, y0 + cy * side
        eyes += np.exp(
            -((xx - cx) ** 2) / (2 * (0.07 * side) ** 2) - (yy - cy) ** 2 / (2 * (0.035 * side) ** 2)
        )
    mask = subject.mask
    frames = np.empty((n, size, size, 3), np.uint8)
    noise = gaussian_noise(rng, (n * size, size * 3), config.noise_sigma).reshape(n, size, size, 3)
    for i in range(n):
        dx = profile[i] * field[0] + drift[i, 0] * mask
        dy = profile[i] * field[1] + drift[i, 1] * mask
        warped = cv2.remap(subject.base, xx - dx, yy - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if blink[i] > 0:
            warped = warped * (1.0 - 0.35 * blink[i] * eyes)[..., None]
        frame = warped * gain[i] + noise[i]
        np.clip(np.rint(frame, out=frame), 0, 255, out=frame)
        frames[i] = frame
    return frames


@dataclass
class SyntheticDataset:
    """A generated benchmark: subjects, clip specifications and annotation rows; clips render on demand."""

    config: SyntheticConfig
    subjects: list[Subject]
    clips: list[ClipSpec]
    report: dict

    @classmethod
    def generate(cls, config: SyntheticConfig = SyntheticConfig()) -> SyntheticDataset:
        subjects, report = build_subjects(config)
        if not subjects:
            raise ValueError("the detector found no synthetic face; check the OpenCV installation")
        clips = plan_clips(config, len(subjects))
        return cls(config, subjects, clips, report)

    def __len__(self) -> int:
        return len(self.clips)

    def rows(self) -> list[dict]:
        return [c.row(self.subjects[c.subject].subject_id) for c in self.clips]

    def render(self, index: int) -> np.ndarray:
        spec = self.clips[index]
        return render_clip(self.subjects[spec.subject], spec, self.config)

    def meta(self) -> dict:
        return {
            "generator": "dfme.synthetic",
            "config": self.config.to_dict(),
            "subjects": {s.subject_id: s.source for s in self.subjects},
            "detection": self.report,
            "emotions": list(EMOTIONS),
            "aus": list(SYNTHETIC_AUS),
        }
