"""Hand-crafted artifact cues (ours) and the fresh-patch pool that fixed the memorisation (lab notebook)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sstam.datasets import IGNORE, DegradedPool
from sstam.models import SpatialDetector
from sstam.models.cues import CUE_NAMES, NUM_CUES, artifact_cues
from sstam.stills import load_still
from sstam.synth import bleeding, blocking, blur, num_levels


def _cues(patches: np.ndarray) -> torch.Tensor:
    return artifact_cues(SpatialDetector.prepare(torch.from_numpy(np.ascontiguousarray(patches))))


def _crops(image: np.ndarray, offsets: list[tuple[int, int]], size: int = 64) -> np.ndarray:
    return np.stack([image[y : y + size, x : x + size] for y, x in offsets])


OFFSETS = [(40 + 11 * i, 60 + 13 * i) for i in range(8)]  # grid phases differ from patch to patch


def test_blockiness_rises_with_jpeg_quantisation_at_any_grid_phase() -> None:
    image = load_still("astronaut")
    k = CUE_NAMES.index("block_h")
    clean = _cues(_crops(image, OFFSETS))[:, k, 0, 0]
    heavy = _cues(_crops(blocking(image, 5), OFFSETS))[:, k, 0, 0]
    # every patch, whatever the offset of the 8×8 grid inside it, sees more boundary steps after q = 5
    assert torch.all(heavy > clean + 0.5)


def test_chroma_blockiness_detects_replicated_chroma_and_blur_lowers_fine_energy() -> None:
    image = load_still("astronaut")
    patches = _crops(image, OFFSETS)
    k = CUE_NAMES.index("chroma_block_h")
    # log(max/mean) of the folded chroma steps lies in [0, log 8]; f = 8 replicated chroma pushes it towards
    # log 8 ≈ 2.1 (measured ≥ 0.6 on these crops, clean ≤ 0.2): a 0.3 margin
    assert torch.all(
        _cues(_crops(bleeding(image, 5), OFFSETS))[:, k, 0, 0] > _cues(patches)[:, k, 0, 0] + 0.3
    )
    f = CUE_NAMES.index("hf_fine")
    fine_clean = _cues(patches)[:, f].mean((1, 2))
    fine_blur = _cues(_crops(blur(image, 3), OFFSETS))[:, f].mean((1, 2))
    assert torch.all(fine_blur < fine_clean - 0.3)  # σ = 3 removes the fine band (log energy / 3)


@pytest.mark.parametrize("size", [32, 64, 75])
def test_cue_maps_shape_dtype_device_and_finite(size: int) -> None:
    x = torch.rand(3, 3, size, size, dtype=torch.float64)
    out = artifact_cues(x)
    assert out.shape == (3, NUM_CUES, size, size) and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()
    assert torch.isfinite(artifact_cues(torch.zeros(1, 3, size, size))).all()  # flat grey patch


def test_detector_input_variants() -> None:
    x = SpatialDetector.prepare(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    for inputs in ("rgb", "rgb+cues", "cues"):
        model = SpatialDetector("mobilenetv3_small_050", inputs=inputs).eval()
        with torch.inference_mode():
            assert model(x).shape == (2, 4)
    with pytest.raises(ValueError, match="inputs"):
        SpatialDetector("mobilenetv3_small_050", inputs="yuv")


def test_fresh_pool_gives_new_patches_and_severity_targets() -> None:
    pool = DegradedPool(["coffee", "coins"], scales=(1.0,), procedural=1, seed=0)
    a, labels, pea, level = pool.sample(400)
    b, *_ = pool.sample(400)
    assert a.shape == (400, 64, 64, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)  # every call crops anew
    clean = pea == -1
    assert 0.1 < clean.mean() < 0.3 and np.all(labels[clean] == 0) and np.all(level[clean] == 0)
    for i in np.flatnonzero(~clean):
        k = int(pea[i])
        others = np.delete(labels[i], k)
        assert np.all(others == 0)
        expected = level[i] / (num_levels(("blurring", "blocking", "bleeding", "ringing")[k]) - 1)
        assert labels[i, k] == IGNORE or labels[i, k] == pytest.approx(expected)
    # grey content never makes a colour-bleeding sample
    assert "coins" in pool.contents and pool.grey[pool.contents.index("coins")]


def test_chroma_420_roundtrip_keeps_luma_and_makes_decoder_like_chroma() -> None:
    from sstam.datasets import chroma_420_roundtrip
    from sstam.synth import luma

    image = load_still("astronaut")[:128, :128]
    out = chroma_420_roundtrip(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    # luma moves only by uint8 rounding of the YCrCb round trip (≤ 2 grey levels on average is generous)
    assert np.abs(luma(out) - luma(image)).mean() < 2.0
    k = CUE_NAMES.index("chroma_block_h")
    assert _cues(out[None, :64, :64])[0, k, 0, 0] > _cues(image[None, :64, :64])[0, k, 0, 0]
    pool = DegradedPool(["coffee"], scales=(1.0,), procedural=0, seed=0, chroma_420=True)
    assert np.array_equal(pool.clean[0], chroma_420_roundtrip(load_still("coffee")))
