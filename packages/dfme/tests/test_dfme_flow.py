"""Optical flow and strain (spec §2.7, §6.7)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from dfme.flow import flow_features, optical_flow, optical_strain
from skimage import data


@pytest.fixture(scope="module")
def face_pair():
    gray = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    face = cv2.resize(gray[50:200, 160:310], (112, 112), interpolation=cv2.INTER_AREA).astype(np.float32)
    shifted = cv2.warpAffine(face, np.float32([[1, 0, 0.7], [0, 1, -0.4]]), (112, 112), flags=cv2.INTER_CUBIC,
                             borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    return np.rint(face).astype(np.uint8), np.clip(np.rint(shifted), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["farneback", "tvl1"])
def test_subpixel_translation_is_recovered(method, face_pair):
    flow = optical_flow(*face_pair, method)
    interior = flow[16:-16, 16:-16].reshape(-1, 2)
    assert np.abs(np.median(interior, axis=0) - [0.7, -0.4]).max() < 0.1


def test_strain_of_translation_and_linear_field():
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    translation = np.stack([np.full_like(xx, 0.7), np.full_like(xx, -0.4)], axis=-1)
    assert np.abs(optical_strain(translation)).max() < 1e-12
    a = 0.03
    stretch = np.stack([a * xx, np.zeros_like(xx)], axis=-1)  # u = a·x: ε_xx = a, everything else 0
    np.testing.assert_allclose(optical_strain(stretch), abs(a), atol=1e-12)
    shear = np.stack([a * yy, np.zeros_like(xx)], axis=-1)  # u = a·y: ε_xy = ε_yx = a/2 → |ε| = a/√2
    np.testing.assert_allclose(optical_strain(shear), abs(a) / np.sqrt(2), atol=1e-12)


def test_flow_features_scale_to_28(face_pair):
    features = flow_features(*face_pair, "farneback", 28)
    assert features.shape == (3, 28, 28) and features.dtype == np.float32
    assert np.median(features[0, 4:-4, 4:-4]) == pytest.approx(0.7 * 28 / 112, abs=0.03)
