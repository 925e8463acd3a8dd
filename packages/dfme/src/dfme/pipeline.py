"""One sample → model input: detection/alignment on the onset frame, one transform for the clip, key-frame
sampling, TIM, optional optical flow (spec §2.3–§2.5, §2.7).

TIM is linear with data-independent weights, so it commutes with the alignment warp and with resizing (spec
§2.4): for the TIM strategies the clip is cropped to the source region the warp reads (read straight out of the
``.npy`` memory map when the reader can), interpolated to ``T`` frames (one blocked uint8 → float32 GEMM) and only
the ``T`` output frames are warped (at the alignment size, then area-resized to the output size). The result
equals "warp and resize every frame, then TIM" up to rounding (tested) at a fraction of the cost: warping the n
input frames instead of the T output frames costs more than the whole TIM (docs/lab-notebook.md §3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from dfme.face import Alignment, DetectorConfig, align_and_resize, align_frame
from dfme.flow import flow_features
from dfme.sampling import sample_frames
from dfme.tim import TIMInfo, tim, tim_float

FrameReader = Callable[[np.ndarray], np.ndarray]
"""``read(indices) -> (len(indices), H, W, 3) uint8``: the frames of one sample at the given indices."""


@dataclass(frozen=True)
class PipelineConfig:
    """Preprocessing settings: output side ``size`` (the alignment is computed for ``align_size``; smaller
    outputs are warped at ``align_size`` and area-resized, i.e. align at 112 then resize), ``num_frames`` T, sampling strategy, TIM method/fallback, flow method for the
    flow models (None: no flow), grayscale output, per-frame alignment (ablation only)."""

    sampling: str = "tim_on_off"
    num_frames: int = 16
    size: int = 112
    align_size: int = 112
    grayscale: bool = False
    tim_method: str = "weights"
    tim_fallback: str = "weights"
    flow: str | None = None
    flow_size: int = 112
    flow_out: int = 28
    per_frame_alignment: bool = False
    detector: DetectorConfig = field(default_factory=DetectorConfig)


@dataclass
class Processed:
    """A processed sample: ``clip`` (T, S, S, C) uint8 (None for flow-only), ``flow`` (3, 28, 28) float32 or
    None, the alignment path, the TIM record (None when TIM was not used) and ``reference`` (S, S, C) uint8, the
    aligned onset frame the ``onset_diff`` input subtracts (``clip[0]`` when the sampling starts at the onset,
    None for flow-only)."""

    clip: np.ndarray | None
    flow: np.ndarray | None
    align_status: str
    tim_info: TIMInfo | None
    reference: np.ndarray | None = None


def source_window(matrix: np.ndarray, size: int, height: int, width: int, pad: int = 2) -> tuple[int, ...]:
    """(x0, y0, x1, y1): the frame region a ``size``×``size`` warp by ``matrix`` reads (bilinear taps + ``pad``)."""
    inverse = cv2.invertAffineTransform(matrix)
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    src = corners @ inverse.T
    x0, y0 = np.floor(src.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(src.max(axis=0)).astype(int) + pad
    return max(x0, 0), max(y0, 0), min(max(x1, 1), width), min(max(y1, 1), height)


def shift_matrix(matrix: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """The matrix acting on a crop whose origin is (x0, y0) in the frame."""
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], np.float64)
    return shifted


def _gray(frames: np.ndarray) -> np.ndarray:
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    return np.rint(frames.astype(np.float32) @ weights)[..., None].clip(0, 255).astype(np.uint8)


def process_sample(
    read: FrameReader,
    onset: int,
    apex: int,
    offset: int,
    n_frames: int,
    fps: float,
    config: PipelineConfig,
    train: bool = False,
    rng: np.random.Generator | None = None,
    want_clip: bool = True,
) -> Processed:
    """Align on the onset frame, sample, interpolate, warp; optionally the onset→apex flow features."""
    onset_frame = read(np.array([onset]))[0]
    base = align_frame(onset_frame, config.align_size, config.detector)
    clip, info, reference = None, None, None
    if want_clip:
        plan = sample_frames(
            config.sampling, onset, apex, offset, n_frames, fps, config.num_frames, train, rng
        )
        if config.per_frame_alignment:
            clip, info = _per_frame(read(plan.indices), plan.tim, config)
        elif plan.tim:
            clip, info = _tim_then_warp(read, plan.indices, onset_frame.shape[:2], base, config)
        else:
            clip = align_and_resize(read(plan.indices), base, config.size)
        starts_at_onset = bool(plan.indices[0] == onset)  # TIM: clip[0] is its exact reconstruction there
        reference = clip[0] if starts_at_onset else align_and_resize(onset_frame[None], base, config.size)[0]
        if config.grayscale:
            clip = _gray(clip)
            reference = clip[0] if starts_at_onset else _gray(reference[None])[0]
    flow = None
    if config.flow is not None:
        aligned = align_and_resize(read(np.array([onset, apex])), base, config.flow_size)
        flow = flow_features(aligned[0], aligned[1], config.flow, config.flow_out)
    return Processed(clip, flow, base.status, info, reference)


def _tim_then_warp(
    read: FrameReader,
    indices: np.ndarray,
    frame_shape: tuple[int, int],
    base: Alignment,
    config: PipelineConfig,
) -> tuple[np.ndarray, TIMInfo]:
    """Crop → TIM (uint8 in, float32 out) → warp the T frames → area-resize; one rounding at the end."""
    height, width = frame_shape
    warp_size = max(config.size, base.size)
    matrix = base.matrix * (warp_size / base.size)
    x0, y0, x1, y1 = source_window(matrix, warp_size, height, width)
    read_window = getattr(read, "read_window", None)
    if read_window is not None:
        crop = read_window(indices, (y0, y1, x0, x1))
    else:
        crop = np.ascontiguousarray(read(indices)[:, y0:y1, x0:x1])
    if config.tim_method == "weights":
        interpolated = tim_float(torch.from_numpy(crop), config.num_frames)
        info = TIMInfo(len(crop), config.num_frames, "weights")
    else:
        interpolated, info = tim(
            torch.from_numpy(crop).float(), config.num_frames, config.tim_method, config.tim_fallback,
            return_info=True,
        )  # fmt: skip
    shifted = Alignment(shift_matrix(base.matrix, x0, y0), base.status, base.size)
    frames = interpolated.numpy().astype(np.float32, copy=False)
    out = align_and_resize(frames, shifted, config.size)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), info


def _per_frame(
    frames: np.ndarray, use_tim: bool, config: PipelineConfig
) -> tuple[np.ndarray, TIMInfo | None]:
    """Ablation: detect and align every frame separately (adds jitter; spec §2.3 item 3)."""
    aligned = np.stack(
        [
            align_and_resize(f[None], align_frame(f, config.align_size, config.detector), config.size)[0]
            for f in frames
        ]
    )
    if not use_tim:
        return aligned, None
    out, info = tim(aligned, config.num_frames, config.tim_method, config.tim_fallback, return_info=True)
    return out, info
