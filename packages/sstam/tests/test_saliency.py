"""Saliency (spec §6.3–6.4): spectral residual backends, combination rules, centre bias."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from sstam.saliency import (
    SaliencyConfig,
    SaliencyModel,
    centre_bias,
    combine_saliency,
    has_cv2_saliency,
    minmax_norm,
    spectral_residual,
)
from sstam.stills import load_still

STILLS = ("astronaut", "coffee", "chelsea", "rocket", "camera")
needs_contrib = pytest.mark.skipif(not has_cv2_saliency(), reason="cv2.saliency needs opencv-contrib")


@needs_contrib
@pytest.mark.parametrize("name", STILLS)
def test_numpy_backend_matches_opencv(name: str) -> None:
    image = load_still(name)
    reference = spectral_residual(image, "opencv")
    ours = spectral_residual(image, "numpy", opencv_compat=True)
    assert ours.shape == reference.shape == image.shape[:2]
    # float32 maps in [0, 1]; OpenCV's cartToPolar uses a ~0.3° polynomial atan, the only difference (≈3e-5)
    assert np.abs(ours - reference).max() < 1e-3


@needs_contrib
@pytest.mark.parametrize("name", STILLS)
def test_torch_backend_correlates_with_opencv(name: str) -> None:
    image = load_still(name)
    reference = spectral_residual(image, "opencv")
    ours = spectral_residual(image, "torch", opencv_compat=True)
    assert np.corrcoef(reference.ravel(), ours.ravel())[0, 1] >= 0.99


def test_paper_flavour_is_a_normalised_map() -> None:
    out = spectral_residual(load_still("coffee"), "numpy", opencv_compat=False)
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    assert out.max() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("backend", ["numpy", "opencv"])
def test_spectral_residual_is_fast(backend: str) -> None:
    if backend == "opencv" and not has_cv2_saliency():
        pytest.skip("no cv2.saliency")
    image = np.ascontiguousarray(load_still("astronaut")[:256, :256])
    spectral_residual(image, backend)
    start = time.perf_counter()
    for _ in range(20):
        spectral_residual(image, backend)
    assert (time.perf_counter() - start) / 20 < 0.010


def test_flat_map_rule_and_range(rng: np.random.Generator) -> None:
    assert np.all(minmax_norm(np.full((8, 9), 3.0)) == 1.0)
    out = combine_saliency(rng.random((16, 16)), rng.random((16, 16)), centre_bias(16, 16))
    assert out.min() >= 0.0 and out.max() <= 1.0 and out.max() == pytest.approx(1.0)


def test_flat_frame_gives_all_ones_without_centre_bias() -> None:
    model = SaliencyModel(SaliencyConfig(centre_bias=False))
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert np.all(model.frame(flat) == 1.0)


def test_first_frame_uses_the_static_map_only(rng: np.random.Generator) -> None:
    frames = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    model = SaliencyModel(SaliencyConfig(backend="numpy"))
    first = model.frame(frames[0])
    gray = cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)
    expected = combine_saliency(spectral_residual(gray, "numpy"), None, centre_bias(64, 64))
    np.testing.assert_allclose(first, expected, atol=1e-6)
    second = model.frame(frames[1])
    assert np.abs(second - expected).max() > 1e-3  # the motion map now contributes


def test_centre_bias_closed_form() -> None:
    h, w = 41, 61
    g = centre_bias(h, w)
    assert np.unravel_index(np.argmax(g), g.shape) == (20, 30)
    y, x = 5, 50
    expected = np.exp(-((x - 30) ** 2) / (2 * (0.25 * w) ** 2) - ((y - 20) ** 2) / (2 * (0.25 * h) ** 2))
    assert g[y, x] == pytest.approx(expected, rel=1e-6)


def test_uniform_ablation_is_all_ones(rng: np.random.Generator) -> None:
    model = SaliencyModel(SaliencyConfig(enabled=False))
    assert np.all(model.frame(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)) == 1.0)
