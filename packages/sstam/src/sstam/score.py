"""The inference pipeline (spec §2.1) and the :class:`SSTAM` quality model.

Frames are streamed: saliency per frame, spatial detectors on the patch grid of every ``frame_stride``-th frame,
temporal detectors on windows of L frames (plus their predecessor frame for the difference stream), pooled with
the saliency weights into per-frame / per-window intensities, aggregated to six video-level intensities and fused
into the score. Only the last L + 1 frames are held in memory.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sstam.config import PipelineConfig
from sstam.errors import VideoInputError
from sstam.fusion import Fusion
from sstam.grid import extract_patches, patch_grid, region_means
from sstam.models import SpatialDetector, TemporalDetector
from sstam.pooling import aggregate, pool_intensity, top_k_mask
from sstam.saliency import SaliencyModel
from sstam.synth import PEAS, SPATIAL_PEAS, TEMPORAL_PEAS

STAGES = ("decode", "saliency", "spatial", "temporal", "fusion")
MIN_FRAMES = 2


@dataclass
class Analysis:
    """What the detectors saw: per-frame spatial and per-window temporal intensities (before fusion)."""

    frames: int = 0
    width: int = 0
    height: int = 0
    spatial_frames: list[int] = field(default_factory=list)  # analysed frame indices
    spatial: list[np.ndarray] = field(default_factory=list)  # [4] per analysed frame
    windows: list[int] = field(default_factory=list)  # window starts
    window_length: int = 8
    temporal: list[np.ndarray] = field(default_factory=list)  # [2] per window
    saliency_mean: list[float] = field(default_factory=list)
    saliency: list[np.ndarray] | None = None
    timing: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    warnings: list[str] = field(default_factory=list)

    def intensities(self, agg: str = "mean") -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        spatial = aggregate(np.stack(self.spatial), agg) if self.spatial else [None] * len(SPATIAL_PEAS)
        for name, value in zip(SPATIAL_PEAS, spatial, strict=True):
            out[name] = None if value is None else float(value)
        temporal = aggregate(np.stack(self.temporal), agg) if self.temporal else [None] * len(TEMPORAL_PEAS)
        for name, value in zip(TEMPORAL_PEAS, temporal, strict=True):
            out[name] = None if value is None else float(value)
        return out

    def per_frame(self) -> dict[str, np.ndarray]:
        """Arrays of length T: spatial values forward-filled between analysed frames, temporal values broadcast
        to the frames of their window (first window wins on overlap), NaN where undefined."""
        t = self.frames
        out = {k: np.full(t, np.nan) for k in PEAS}
        if self.spatial:
            index = np.searchsorted(self.spatial_frames, np.arange(t), side="right") - 1
            values = np.stack(self.spatial)
            valid = index >= 0
            for k, name in enumerate(SPATIAL_PEAS):
                out[name][valid] = values[index[valid], k]
        for j, start in enumerate(self.windows):
            for k, name in enumerate(TEMPORAL_PEAS):
                segment = out[name][start : start + self.window_length]
                segment[np.isnan(segment)] = self.temporal[j][k]
        out["saliency_mean"] = np.asarray(self.saliency_mean, np.float64)
        return out


@dataclass
class SSTAMResult:
    """The result of :meth:`SSTAM.score` (spec §2.11)."""

    score: float | None
    intensities: dict[str, float | None]
    per_frame: dict[str, np.ndarray]
    saliency: np.ndarray | None
    windows: list[int]
    warnings: list[str]
    timing: dict[str, float]
    frames: int
    width: int
    height: int
    fps: float


class Engine:
    """Detectors + pipeline settings on one device; :meth:`analyze` streams frames through them."""

    def __init__(
        self,
        spatial: SpatialDetector,
        temporal: TemporalDetector | None,
        pipeline: PipelineConfig,
        device: torch.device | str = "cpu",
        precision: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.spatial = spatial.to(self.device).eval()
        self.temporal = temporal.to(self.device).eval() if temporal is not None else None
        self.pipeline = pipeline
        self.precision = precision
        self.window = self.temporal.num_frames if self.temporal is not None else 8
        self.cube = self.temporal.image_size if self.temporal is not None else pipeline.patch

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision and "bf16" in self.precision:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.precision and "16" in self.precision and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def spatial_probs(self, patches: np.ndarray) -> np.ndarray:
        """``uint8 [N, P, P, 3]`` → ``p^k`` ``[N, 4]`` (batched)."""
        out = []
        batch = max(1, self.pipeline.batch_size)
        for start in range(0, len(patches), batch):
            x = torch.from_numpy(np.ascontiguousarray(patches[start : start + batch])).to(self.device)
            with self._autocast():
                logits = self.spatial(SpatialDetector.prepare(x))
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(SPATIAL_PEAS)), np.float32)

    @torch.inference_mode()
    def temporal_probs(self, cubes: np.ndarray, has_prev: np.ndarray) -> np.ndarray:
        """``uint8 [N, L+1, C, C, 3]`` → ``p^k`` ``[N, 2]`` (batched)."""
        if self.temporal is None:
            raise RuntimeError("this model has no temporal detector")
        out = []
        batch = max(1, self.pipeline.batch_size // 8)
        for start in range(0, len(cubes), batch):
            x = torch.from_numpy(np.ascontiguousarray(cubes[start : start + batch])).to(self.device)
            prev = torch.from_numpy(np.asarray(has_prev[start : start + batch])).to(self.device)
            with self._autocast():
                logits = self.temporal(TemporalDetector.prepare(x), prev)
            out.append(torch.sigmoid(logits.float()).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(TEMPORAL_PEAS)), np.float32)

    def analyze(
        self,
        frames: Iterable[np.ndarray],
        keep_saliency: bool = False,
        on_frame: Callable[[int, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray], None] | None = None,
        on_window: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
        source: str = "video",
    ) -> Analysis:
        """Stream ``frames`` (RGB ``uint8 [H, W, 3]``) through saliency, spatial and temporal branches."""
        cfg = self.pipeline
        result = Analysis(saliency=[] if keep_saliency else None, window_length=self.window)
        timing = result.timing
        saliency_model = SaliencyModel(cfg.saliency)
        history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=self.window + 1)
        pending: list[tuple[int, np.ndarray, np.ndarray]] = []
        corners = cube_corners = None
        size = None

        def flush() -> None:
            if not pending:
                return
            start = time.perf_counter()
            stack = np.stack([f for _, f, _ in pending])
            maps = np.stack([s for _, _, s in pending])
            patches = extract_patches(stack, corners, cfg.patch)  # [F, N, P, P, 3]
            weights = region_means(maps, corners, cfg.patch)  # [F, N]
            mask = top_k_mask(weights, cfg.spatial_top_k if cfg.spatial_selection == "top_k" else None)
            probs = np.zeros((*weights.shape, len(SPATIAL_PEAS)), np.float64)
            probs[mask] = self.spatial_probs(patches[mask])
            pooled = pool_intensity(probs, weights * mask, cfg.pooling_mode)
            self._sync()
            timing["spatial"] += time.perf_counter() - start
            for row, (t, frame, smap) in enumerate(pending):
                result.spatial_frames.append(t)
                result.spatial.append(pooled[row])
                if on_frame is not None:
                    on_frame(t, frame, smap, np.where(mask[row, :, None], probs[row], np.nan), corners)
            pending.clear()

        def run_window(start_frame: int) -> None:
            start = time.perf_counter()
            items = list(history)[-(self.window + 1) :]
            if len(items) == self.window + 1:
                prev, items = items[0], items[1:]
            else:
                prev = None
            clip = np.stack([f for f, _ in items])
            maps = np.stack([s for _, s in items])
            weights = region_means(maps, cube_corners, self.cube).mean(axis=0)  # [N]
            mask = top_k_mask(weights, cfg.temporal_top_k if cfg.temporal_selection == "top_k" else None)
            chosen = cube_corners[mask]
            full = np.concatenate([(prev[0] if prev is not None else clip[0])[None], clip])
            cubes = extract_patches(full, chosen, self.cube).transpose(1, 0, 2, 3, 4)  # [N, L+1, C, C, 3]
            has_prev = np.full(len(cubes), prev is not None and start_frame > 0)
            probs = self.temporal_probs(cubes, has_prev)
            pooled = pool_intensity(probs, weights[mask], cfg.pooling_mode)
            self._sync()
            timing["temporal"] += time.perf_counter() - start
            result.windows.append(start_frame)
            result.temporal.append(pooled)
            if on_window is not None:
                on_window(start_frame, clip[0], probs, chosen)

        iterator: Iterator[np.ndarray] = iter(frames)
        t = 0
        while True:
            start = time.perf_counter()
            try:
                frame = next(iterator)
            except StopIteration:
                timing["decode"] += time.perf_counter() - start
                break
            timing["decode"] += time.perf_counter() - start
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frames must be RGB uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
            if size is None:
                size = frame.shape[:2]
                need = max(cfg.patch, self.cube if self.temporal is not None else 0)
                if min(size) < need:
                    raise VideoInputError(
                        f"{source}: frames of {size[1]}x{size[0]} are smaller than the {need}x{need} patch size "
                        f"(expected both sides ≥ {need} px)"
                    )
                corners = patch_grid(size[0], size[1], cfg.patch)
                cube_corners = patch_grid(size[0], size[1], self.cube)
            elif frame.shape[:2] != size:
                raise VideoInputError(
                    f"{source}: frame {t} is {frame.shape[1]}x{frame.shape[0]}, not {size[1]}x{size[0]}"
                )
            start = time.perf_counter()
            smap = saliency_model.frame(frame)
            timing["saliency"] += time.perf_counter() - start
            history.append((frame, smap))
            result.saliency_mean.append(float(smap.mean()))
            if result.saliency is not None:
                result.saliency.append(smap)
            if t % max(1, cfg.frame_stride) == 0:
                pending.append((t, frame, smap))
            t += 1
            if len(pending) * len(corners) >= 4 * cfg.batch_size:
                flush()
            if self.temporal is not None and t % self.window == 0:
                flush()
                run_window(t - self.window)
        flush()
        result.frames = t
        if t == 0:
            raise VideoInputError(f"{source} has no decodable frames (an empty or broken file)")
        if t < MIN_FRAMES:
            raise VideoInputError(f"{source} has a single frame (a video needs at least {MIN_FRAMES} frames)")
        result.height, result.width = size
        if self.temporal is not None:
            if t < self.window:
                result.warnings.append(
                    f"the clip has {t} frames, fewer than the temporal window L = {self.window}: flickering and "
                    "floating are null (fusion imputes their training mean)"
                )
            elif t % self.window:
                run_window(t - self.window)
        else:
            result.warnings.append("this model has no temporal detector: flickering and floating are null")
        return result


class SSTAM:
    """The SSTAM quality model: an :class:`Engine` and a fitted :class:`~sstam.fusion.Fusion`."""

    def __init__(
        self, engine: Engine, fusion: Fusion | None, name: str = "", meta: dict[str, Any] | None = None
    ) -> None:
        self.engine = engine
        self.fusion = fusion
        self.name = name
        self.meta = dict(meta or {})

    @classmethod
    def load(
        cls, bundle: str | Path = "default", device: str | torch.device = "cpu", precision: str | None = None
    ) -> SSTAM:
        """A bundle folder, a ``.ckpt`` written by ``sstam train``, or ``"default"`` (the shipped bundle)."""
        from sstam.bundle import load_model

        return load_model(bundle, device, precision)

    def combine(self, analysis: Analysis, fps: float = 25.0, per_frame: bool = False) -> SSTAMResult:
        start = time.perf_counter()
        intensities = analysis.intensities(self.engine.pipeline.agg)
        score = None
        warnings = list(analysis.warnings)
        if self.fusion is not None:
            from sstam.fusion import feature_matrix

            score = float(self.fusion.predict(feature_matrix([intensities]))[0])
        else:
            warnings.append("this model has no fitted fusion: no score (run `sstam fit-fusion`)")
        analysis.timing["fusion"] += time.perf_counter() - start
        saliency = np.stack(analysis.saliency) if analysis.saliency else None
        return SSTAMResult(
            score,
            intensities,
            analysis.per_frame() if per_frame else {},
            saliency,
            list(analysis.windows),
            warnings,
            dict(analysis.timing),
            analysis.frames,
            analysis.width,
            analysis.height,
            float(fps),
        )

    def score(
        self,
        frames: np.ndarray | Iterable[np.ndarray],
        fps: float = 25.0,
        per_frame: bool = False,
        return_saliency: bool = False,
    ) -> SSTAMResult:
        """Score RGB ``uint8 [T, H, W, 3]`` frames (or any iterable of frames)."""
        analysis = self.engine.analyze(frames, keep_saliency=return_saliency, source="frames")
        return self.combine(analysis, fps, per_frame)

    def score_file(
        self,
        path: str | Path,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        pix_fmt: str = "yuv420p",
        max_frames: int | None = None,
        per_frame: bool = False,
        return_saliency: bool = False,
        **callbacks: Any,
    ) -> tuple[SSTAMResult, Any]:
        """Decode and score a video file (streamed); returns the result and the video's :class:`VideoInfo`."""
        from sstam.video_io import open_video

        start = time.perf_counter()
        source = open_video(path, size, fps, pix_fmt, max_frames)
        opened = time.perf_counter() - start
        result = self.score_source(source, per_frame, return_saliency, **callbacks)
        result.timing["decode"] += opened
        return result, source.info

    def score_source(
        self, source: Any, per_frame: bool = False, return_saliency: bool = False, **callbacks: Any
    ) -> SSTAMResult:
        """Score an opened :class:`~sstam.video_io.VideoSource`."""
        analysis = self.engine.analyze(
            source, keep_saliency=return_saliency, source=f"video {source.path}", **callbacks
        )
        return self.combine(analysis, source.info.fps, per_frame)
