"""The synthetic benchmark (spec §3a, §6.10)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from dfme.synthetic import (
    CLASS_PROPORTIONS,
    FACE_SCALE,
    LANDMARKS,
    SyntheticConfig,
    SyntheticDataset,
    expression_field,
    temporal_profile,
)


@pytest.fixture(scope="module")
def default() -> SyntheticDataset:
    return SyntheticDataset.generate(SyntheticConfig())


def test_default_size_classes_and_parts(default):
    assert default.report["kept"] == 60 and 450 <= len(default) <= 600
    emotions = np.array([c.emotion for c in default.clips])
    for emotion, share in CLASS_PROPORTIONS.items():
        assert abs(np.mean(emotions == emotion) - share) <= 0.03
    parts = np.array([c.part for c in default.clips])
    for part, share in zip("ABC", (0.15, 0.13, 0.72), strict=True):
        assert abs(np.mean(parts == part) - share) <= 0.01
    fps = {c.part: c.fps for c in default.clips}
    assert fps == {"A": 500, "B": 300, "C": 200}
    per_subject = np.bincount([c.subject for c in default.clips])
    assert per_subject.min() >= 6 and per_subject.max() <= 12


def test_amplitudes_at_apex_within_half_to_two_pixels(default):
    for spec in default.clips[:60]:
        box = default.subjects[spec.subject].box
        field = expression_field(spec, box, 160)
        peak = np.sqrt((field**2).sum(0)).max() * FACE_SCALE / box[2]
        assert 0.5 <= peak <= 2.0 and peak == pytest.approx(spec.amplitude)
        profile = temporal_profile(spec)
        assert profile[spec.apex] == 1.0 and profile[: spec.onset + 1].max() == 0.0
        assert profile[spec.offset :].max() == 0.0


def test_contempt_is_one_sided(default):
    contempt = [c for c in default.clips if c.emotion == "contempt"][:6]
    assert {c.side for c in contempt} == {-1, 1} or len(contempt) < 6
    for spec in contempt:
        x0, y0, side, _ = default.subjects[spec.subject].box
        magnitude = np.sqrt((expression_field(spec, default.subjects[spec.subject].box, 160) ** 2).sum(0))
        y = int(round(y0 + 0.75 * side))
        left, right = (
            magnitude[y, int(round(x0 + fx * side))]
            for fx in (LANDMARKS["lip_corner_l"][0], LANDMARKS["lip_corner_r"][0])
        )
        moving, still = (left, right) if spec.side < 0 else (right, left)
        assert still < 0.01 * moving  # the other lip corner only sees the far tail of the bump


def test_deterministic_rendering_and_seed_dependence():
    config = SyntheticConfig(subjects=3, clips_per_subject=(2, 2))
    a, b = SyntheticDataset.generate(config), SyntheticDataset.generate(config)
    assert a.rows() == b.rows()
    np.testing.assert_array_equal(a.render(1), b.render(1))
    c = SyntheticDataset.generate(replace(config, seed=1))
    assert a.rows() != c.rows()


def test_motion_is_micro_and_noise_is_two_grey_levels(default):
    spec = default.clips[0]
    quiet = replace(default.config, noise_sigma=0.0, flicker=0.0, drift_px=0.0, blink_probability=0.0)
    frames = SyntheticDataset(quiet, default.subjects, default.clips, {}).render(0).astype(float)
    assert np.array_equal(frames[0], frames[spec.onset])  # neutral before the onset
    assert np.abs(frames[spec.apex] - frames[spec.onset]).max() > 5  # the expression moves edges
    noisy = default.render(0).astype(float)
    residual = noisy[0] - frames[0]
    assert residual.std() == pytest.approx(np.sqrt(2.0**2 + 1 / 12), rel=0.25)  # σ = 2 plus uint8 rounding
