"""Codec training patches (ours, 0.3): real x264/x265 round trips, aligned with their source, rung targets on the
blurring and blocking heads only."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sstam.codec import have_codecs
from sstam.stills import load_still
from sstam.synth import SPATIAL_PEAS

pytestmark = pytest.mark.skipif(not have_codecs(), reason="PyAV with libx264 is not installed")


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.ascontiguousarray(load_still("coffee")[:128, :192])


def test_codec_last_frame_is_aligned_and_degrades_with_the_rung(image: np.ndarray) -> None:
    """The decoded last frame is the source frame (alignment: its error is far below a 2-px shift's) and its
    error grows strictly along the CRF ladder."""
    from sstam.datasets import codec_last_frame

    errors = []
    for crf in (28, 35, 42, 51):
        frame = codec_last_frame(image, "x264", "crf", crf, frames=4)
        assert frame.shape == image.shape and frame.dtype == np.uint8
        errors.append(np.abs(frame.astype(np.int16) - image.astype(np.int16)).mean())
    shifted = np.abs(np.roll(image, 2, axis=1).astype(np.int16) - image.astype(np.int16)).mean()
    assert errors[0] < 0.5 * shifted
    assert all(a < b for a, b in itertools.pairwise(errors)), errors


def test_pool_codec_jobs_target_blur_and_blocking_with_the_rung() -> None:
    from sstam.datasets import CODEC_INDEX, IGNORE, DegradedPool

    pool = DegradedPool(["chelsea"], [0.5], 0, seed=1, codecs=["x264"], codec_crf=[35, 51])
    assert pool.codec_levels == {"codec:x264": 2}
    assert ("codec:x264", 1) in pool.jobs and ("codec:x264", 2) in pool.jobs
    _, labels, pea, level = pool.sample(400)
    codec = pea == CODEC_INDEX
    assert codec.sum() >= 10
    blur, block = SPATIAL_PEAS.index("blurring"), SPATIAL_PEAS.index("blocking")
    rows = labels[codec]
    visible = rows[:, blur] != IGNORE
    assert visible.any()
    assert np.array_equal(rows[:, blur], rows[:, block])
    assert np.allclose(
        rows[visible, blur], level[codec][visible] / 2
    )  # rung r of R = 2 → r / 2, exact in float
    others = [k for k in range(len(SPATIAL_PEAS)) if k not in (blur, block)]
    assert (rows[:, others] == IGNORE).all()
    assert (labels[~codec][:, others] != IGNORE).any() or (pea[~codec] >= 0).any()


def test_unknown_codec_is_a_config_error() -> None:
    from sstam.data import SSTAMData

    from paperlab_core.errors import ConfigError

    with pytest.raises(ConfigError, match="spatial_codecs"):
        SSTAMData(spatial_codecs=["vp9"])
