"""TIM (spec §2.4, §6.3)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from dfme.tim import (
    output_positions,
    path_graph_eigenvalues,
    path_graph_eigenvectors,
    tim,
    tim_batch,
    tim_float,
    tim_svd,
    tim_weights,
)


@pytest.mark.parametrize("n,length", [(5, 16), (16, 16), (40, 10), (1, 4), (2, 3)])
def test_output_length(n, length, rng):
    x = rng.random((n, 4, 4, 3))
    assert tim(x, length).shape == (length, 4, 4, 3)
    assert tim(x, length, method="svd").shape == (length, 4, 4, 3)


@pytest.mark.parametrize("n", [5, 10, 31])
def test_svd_path_reconstructs_input_at_original_positions(n, rng):
    x = torch.as_tensor(rng.random((n, 300)))
    out, info = tim_svd(x, np.arange(1, n + 1) / n)
    # float64, d = 300, n ≤ 31: a few hundred flops per value; 1e-6 × range is the spec's bound, far above 1e-14
    assert (out - x).abs().max().item() < 1e-6 * float(x.max() - x.min())
    assert info.fallback is None


def test_identity_when_length_equals_n_is_bit_exact(rng):
    x = (rng.random((16, 8, 8, 3)) * 255).astype(np.uint8)
    assert tim(x, 16) is x
    assert tim(x, 16, method="svd") is x


def test_closed_form_eigenvectors_equal_eigh():
    for n in (2, 5, 12):
        lap = np.diag(np.r_[1, 2 * np.ones(n - 2), 1]) - np.eye(n, k=1) - np.eye(n, k=-1)
        values, vectors = np.linalg.eigh(lap)
        np.testing.assert_allclose(values[1:], path_graph_eigenvalues(n), atol=1e-12)
        y = path_graph_eigenvectors(n)
        for k in range(1, n):
            a, b = y[k - 1] / np.linalg.norm(y[k - 1]), vectors[:, k]
            assert abs(abs(a @ b) - 1) < 1e-10  # equal up to sign and scale
        np.testing.assert_allclose(y @ y.T, n / 2 * np.eye(n - 1), atol=1e-12)


@pytest.mark.parametrize("fallback", ["weights", "ridge", "linear", "dedup"])
def test_rank_deficient_clip_uses_the_fallback_and_never_nan(fallback, rng):
    x = np.repeat(
        rng.random((3, 300)), 4, axis=0
    )  # 3 distinct frames, each repeated 4 times (static 500 fps)
    out, info = tim(x, 16, method="svd", fallback=fallback, return_info=True)
    assert info.fallback == fallback and info.rank_ratio < 1e-10
    assert np.isfinite(out).all()
    assert out.min() > -0.5 and out.max() < 1.5  # the literal algorithm gives garbage of order 10 here


@pytest.mark.parametrize("n", [2, 5, 16, 31, 200])
def test_weights_equal_svd_on_full_rank_clips(n, rng):
    x = rng.random((n, 3 * n + 50))
    a, b = tim(x, 16), tim(x, 16, method="svd")
    assert np.abs(a - b).max() <= 1e-8 * np.abs(b).max()


def test_weights_commute_with_a_bilinear_warp(rng):
    clip = (rng.random((40, 48, 48, 3)) * 255).astype(np.uint8)
    clip = np.stack([cv2.GaussianBlur(f, (5, 5), 1.5) for f in clip])
    m = cv2.getRotationMatrix2D((24, 24), 7, 1.1)

    def warp(frames):
        return np.stack([cv2.warpAffine(f, m, (48, 48), flags=cv2.INTER_LINEAR) for f in frames])

    before = warp(tim(clip.astype(np.float32), 16)).clip(0, 255)
    after = tim(warp(clip).astype(np.float32), 16).clip(0, 255)
    # uint8 rounding of the warped input (≤ 0.5) spread by |A| weights; the spec allows 2 grey levels
    assert np.abs(np.rint(before) - np.rint(after)).max() <= 2


def test_weights_commute_with_area_resize_and_crop_in_float(rng):
    """TIM is linear in time, crop/resize are linear in space: the orders agree up to float32 rounding
    (≈ 1e-4 of the 0–255 range after a 60-term sum and a 4×4 box average), so the pipeline may resize first."""
    clip = (rng.random((60, 64, 64, 3)) * 255).astype(np.float32)

    def resize(frames):
        return np.stack([cv2.resize(f, (16, 16), interpolation=cv2.INTER_AREA) for f in frames])

    np.testing.assert_allclose(resize(tim(clip, 16)), tim(resize(clip), 16), atol=1e-3)
    np.testing.assert_allclose(tim(clip, 16)[:, 5:40, 3:50], tim(clip[:, 5:40, 3:50], 16), atol=1e-3)


@pytest.mark.parametrize("n", [1, 16, 200])
def test_tim_float_on_uint8_equals_the_float_path(n, rng, monkeypatch):
    clip = (rng.random((n, 30, 31, 3)) * 255).astype(np.uint8)
    monkeypatch.setattr(
        "dfme.tim.GEMM_BLOCK_BYTES", 4 * n * 100
    )  # several column blocks and a ragged last one
    out = tim_float(clip, 16)
    assert out.dtype == torch.float32 and out.shape == (16, 30, 31, 3)
    reference = tim(clip.astype(np.float32), 16)  # one float32 GEMM over the whole clip
    # float32 sums of ≤ 200 terms of size ≤ 255·|a|: agreement to 1e-3 grey levels
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(reference, out.shape), atol=1e-3)


def test_batched_weights_equal_per_clip_and_uint8_roundtrip(rng):
    clips = torch.as_tensor((rng.random((3, 20, 6, 6, 3)) * 255).astype(np.uint8))
    batched = tim_batch(clips, 8)
    assert batched.dtype == torch.uint8
    for b in range(3):
        assert torch.equal(batched[b], tim(clips[b], 8))


def test_output_positions_and_weight_columns():
    assert output_positions(10, 10) == pytest.approx(np.arange(1, 11) / 10)
    a = tim_weights(7, 12)
    assert a.shape == (7, 12)
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-12)  # constants are reproduced exactly
    with pytest.raises(ValueError):
        a[0, 0] = 1.0
