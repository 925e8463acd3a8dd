"""Key-frame sampling strategies (spec §2.5): which frames of a sample feed the model.

Every strategy returns a :class:`SamplingPlan`: the frame indices to read (inclusive, monotone non-decreasing,
clamped to [onset, offset] except ``uniform_full``) and whether TIM (§2.4) then interpolates them to ``T``
frames. Rounding is numpy ``rint`` (half to even). Short intervals (offset − onset + 1 < T) repeat indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STRATEGIES = (
    "uniform_on_off", "tim_on_off", "uniform_on_apex", "tim_on_apex", "apex_window", "fixed_dt",
    "segment_random", "onset_apex_pair", "uniform_full",
)  # fmt: skip
APEX_WINDOW_S = 0.1
FIXED_DT_S = 0.01


@dataclass(frozen=True)
class SamplingPlan:
    """Frame indices to read and whether TIM interpolates them to ``length`` frames."""

    indices: np.ndarray
    tim: bool
    length: int


def _rint_linspace(start: int, stop: int, count: int) -> np.ndarray:
    return np.rint(np.linspace(start, stop, count)).astype(np.int64)


def sample_frames(
    strategy: str,
    onset: int,
    apex: int,
    offset: int,
    n_frames: int,
    fps: float,
    length: int = 16,
    train: bool = False,
    rng: np.random.Generator | None = None,
) -> SamplingPlan:
    """The :class:`SamplingPlan` of ``strategy`` for one annotated sample.

    ``segment_random`` draws one frame per segment from ``rng`` when ``train`` and takes segment centres
    otherwise; every other strategy is deterministic.
    """
    if not 0 <= onset <= apex <= offset < n_frames:
        raise ValueError(
            f"need 0 ≤ onset ≤ apex ≤ offset < n_frames, got {onset}, {apex}, {offset}, {n_frames}"
        )
    if strategy == "uniform_on_off":
        idx = _rint_linspace(onset, offset, length)
    elif strategy == "uniform_on_apex":
        idx = _rint_linspace(onset, apex, length)
    elif strategy == "tim_on_off":
        return SamplingPlan(np.arange(onset, offset + 1), True, length)
    elif strategy == "tim_on_apex":
        return SamplingPlan(np.arange(onset, apex + 1), True, length)
    elif strategy == "apex_window":
        step = max(1, int(np.rint(fps * APEX_WINDOW_S / length)))
        idx = apex + step * (np.arange(length) - length // 2)
    elif strategy == "fixed_dt":
        idx = onset + fixed_dt_stride(fps) * np.arange(length)
    elif strategy == "segment_random":
        span = offset - onset + 1
        if train:
            rng = rng if rng is not None else np.random.default_rng()
            u = rng.random(length)
        else:
            u = np.full(length, 0.5)
        idx = np.floor(onset + (np.arange(length) + u) * span / length).astype(np.int64)
    elif strategy == "onset_apex_pair":
        return SamplingPlan(np.array([onset, apex], dtype=np.int64), False, 2)
    elif strategy == "uniform_full":
        return SamplingPlan(_rint_linspace(0, n_frames - 1, length), False, length)
    else:
        raise ValueError(f"unknown sampling strategy {strategy!r} (strategies: {', '.join(STRATEGIES)})")
    return SamplingPlan(np.clip(idx, onset, offset).astype(np.int64), False, length)


def fixed_dt_stride(fps: float, dt: float = FIXED_DT_S) -> int:
    """fps-normalised stride = fps·Δt (Δt = 10 ms): 5 / 3 / 2 frames at 500 / 300 / 200 fps."""
    return max(1, int(np.rint(fps * dt)))
