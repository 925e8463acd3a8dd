"""Key-frame sampling (spec §2.5, §6.4): golden index lists computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from dfme.sampling import STRATEGIES, fixed_dt_stride, sample_frames

ON, APEX, OFF, N = 10, 25, 50, 80
GOLDEN_T8_200FPS = {
    "uniform_on_off": [10, 16, 21, 27, 33, 39, 44, 50],  # rint(10 + 40 j / 7)
    "uniform_on_apex": [10, 12, 14, 16, 19, 21, 23, 25],  # rint(10 + 15 j / 7)
    "apex_window": [17, 19, 21, 23, 25, 27, 29, 31],  # s = rint(200·0.1/8 = 2.5) = 2 (half to even)
    "fixed_dt": [10, 12, 14, 16, 18, 20, 22, 24],  # stride 200·0.01 = 2
    "segment_random": [12, 17, 22, 27, 33, 38, 43, 48],  # eval: ⌊10 + (j + ½)·41/8⌋
    "onset_apex_pair": [10, 25],
    "uniform_full": [0, 11, 23, 34, 45, 56, 68, 79],  # rint(79 j / 7)
}


@pytest.mark.parametrize("strategy", list(GOLDEN_T8_200FPS))
def test_golden_lists(strategy):
    plan = sample_frames(strategy, ON, APEX, OFF, N, 200, 8)
    assert plan.indices.tolist() == GOLDEN_T8_200FPS[strategy]
    assert not plan.tim


def test_apex_window_at_500_fps_is_clamped_and_contains_apex():
    plan = sample_frames("apex_window", ON, APEX, OFF, N, 500, 8)
    assert plan.indices.tolist() == [10, 10, 13, 19, 25, 31, 37, 43]  # s = rint(6.25) = 6, clamped at onset


def test_tim_strategies_read_the_annotated_interval():
    plan = sample_frames("tim_on_off", ON, APEX, OFF, N, 200, 16)
    assert plan.tim and plan.indices.tolist() == list(range(10, 51)) and plan.length == 16
    assert sample_frames("tim_on_apex", ON, APEX, OFF, N, 200, 16).indices.tolist() == list(range(10, 26))


@pytest.mark.parametrize("fps,stride", [(500, 5), (300, 3), (200, 2)])
def test_fixed_dt_strides(fps, stride):
    assert fixed_dt_stride(fps) == stride
    idx = sample_frames("fixed_dt", ON, APEX, OFF, N, fps, 16).indices
    assert np.all(np.diff(idx)[idx[1:] < OFF] == stride)
    assert idx.max() <= OFF


def test_short_interval_repeats_indices():
    assert sample_frames("uniform_on_off", 5, 6, 7, 20, 200, 8).indices.tolist() == [5, 5, 6, 6, 6, 6, 7, 7]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("fps", [200, 300, 500])
def test_bounds_and_monotone(strategy, fps, rng):
    for _ in range(20):
        onset = int(rng.integers(0, 40))
        offset = onset + int(rng.integers(0, 60))
        apex = int(rng.integers(onset, offset + 1))
        n = offset + 1 + int(rng.integers(0, 10))
        plan = sample_frames(strategy, onset, apex, offset, n, fps, 16, train=True, rng=rng)
        idx = plan.indices
        assert np.all(np.diff(idx) >= 0)
        low, high = (0, n - 1) if strategy == "uniform_full" else (onset, offset)
        assert idx.min() >= low and idx.max() <= high
        if strategy == "apex_window":
            assert apex in idx


def test_segment_random_is_seeded_and_centres_in_eval():
    a = sample_frames("segment_random", ON, APEX, OFF, N, 200, 8, True, np.random.default_rng(5)).indices
    b = sample_frames("segment_random", ON, APEX, OFF, N, 200, 8, True, np.random.default_rng(5)).indices
    c = sample_frames("segment_random", ON, APEX, OFF, N, 200, 8, True, np.random.default_rng(6)).indices
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    edges = ON + np.arange(9) * 41 / 8
    assert np.all((a >= np.floor(edges[:-1])) & (a < edges[1:]))


def test_invalid_annotation_and_unknown_strategy():
    with pytest.raises(ValueError, match="onset ≤ apex"):
        sample_frames("uniform_on_off", 10, 5, 20, 30, 200, 8)
    with pytest.raises(ValueError, match="unknown sampling strategy"):
        sample_frames("nope", 0, 1, 2, 3, 200, 8)
