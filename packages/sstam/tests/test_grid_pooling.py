"""Patch grid, temporal windows and saliency-weighted pooling (spec §6.5)."""

from __future__ import annotations

import numpy as np
import pytest
from sstam.grid import extract_patches, grid_shape, patch_grid, region_means, window_starts
from sstam.pooling import aggregate, pool_intensity, top_k_mask


@pytest.mark.parametrize(("h", "w", "shape"), [(144, 176, (3, 3)), (1080, 1920, (17, 30)), (64, 64, (1, 1))])
def test_border_aligned_grid_covers_every_pixel(h: int, w: int, shape: tuple[int, int]) -> None:
    corners = patch_grid(h, w, 64)
    assert len(corners) == shape[0] * shape[1] and grid_shape(h, w, 64) == shape
    covered = np.zeros((h, w), bool)
    for y, x in corners:
        covered[y : y + 64, x : x + 64] = True
    assert covered.all()
    assert corners[:, 0].max() == h - 64 and corners[:, 1].max() == w - 64


def test_window_starts() -> None:
    assert window_starts(9, 8).tolist() == [0, 1]
    assert window_starts(64, 8).tolist() == list(range(0, 64, 8))
    assert window_starts(20, 8).tolist() == [0, 8, 12]
    assert window_starts(5, 8).tolist() == []


def test_patches_and_region_means(rng: np.random.Generator) -> None:
    frames = rng.integers(0, 256, (2, 40, 50, 3), dtype=np.uint8)
    corners = patch_grid(40, 50, 16)
    patches = extract_patches(frames, corners, 16)
    y, x = corners[4]
    np.testing.assert_array_equal(patches[1, 4], frames[1, y : y + 16, x : x + 16])
    maps = rng.random((2, 40, 50))
    means = region_means(maps, corners, 16)
    assert means[1, 4] == pytest.approx(maps[1, y : y + 16, x : x + 16].mean(), rel=1e-12)


def test_pool_intensity_by_hand() -> None:
    p = np.array([[0.2, 0.9], [0.6, 0.1], [0.8, 0.4]])  # 3 patches, 2 PEAs
    w = np.array([1.0, 3.0, 0.5])
    expected = (w[:, None] * p).sum(0) / w.sum()
    np.testing.assert_allclose(pool_intensity(p, w), expected, rtol=1e-12)
    np.testing.assert_allclose(pool_intensity(p, np.ones(3), "threshold"), [2 / 3, 1 / 3], rtol=1e-12)


def test_oracle_detector_prefers_salient_injection(rng: np.random.Generator) -> None:
    """p = 1 inside the injected patches, 0 elsewhere: weighted intensity is higher for the top-saliency region;
    with uniform weights both placements give the same intensity."""
    n = 16
    weights = rng.random(n) + 0.05
    order = np.argsort(weights)
    top, bottom = np.zeros(n), np.zeros(n)
    top[order[-4:]] = 1.0
    bottom[order[:4]] = 1.0
    assert pool_intensity(top, weights) > pool_intensity(bottom, weights)
    assert abs(pool_intensity(top, np.ones(n)) - pool_intensity(bottom, np.ones(n))) < 1e-12


def test_aggregate_and_top_k() -> None:
    values = np.arange(10.0)
    assert aggregate(values, "mean") == 4.5 and aggregate(values, "max") == 9.0
    assert aggregate(values, "p90") == pytest.approx(np.percentile(values, 90))
    mask = top_k_mask(np.array([[0.1, 0.5, 0.3, 0.9]]), 2)
    assert mask.tolist() == [[False, True, False, True]]
