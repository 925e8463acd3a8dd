"""The six PEA generators (spec §6.6): deterministic, level 0 exact, severity monotone in independent proxies."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import stats
from sstam.stills import load_still
from sstam.synth import (
    FLOAT_DELTAS,
    SPATIAL_PEAS,
    degrade,
    edge_blocks,
    flicker_level,
    floating_clip,
    luma,
    num_levels,
    pan_clip,
    pan_trajectory,
    psnr,
)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.ascontiguousarray(load_still("coffee")[:256, :256])


def _levels(pea: str) -> range:
    return range(num_levels(pea))


@pytest.mark.parametrize("pea", SPATIAL_PEAS)
def test_level_zero_is_the_identity_and_generators_are_deterministic(image: np.ndarray, pea: str) -> None:
    np.testing.assert_array_equal(degrade(image, pea, 0), image)
    top = num_levels(pea) - 1
    np.testing.assert_array_equal(degrade(image, pea, top, seed=3), degrade(image, pea, top, seed=3))
    assert np.abs(degrade(image, pea, top).astype(int) - image).mean() > 1.0


def _monotone(values: list[float], sign: int) -> float:
    return sign * stats.spearmanr(range(len(values)), values).statistic


def test_blurring_lowers_laplacian_variance(image: np.ndarray) -> None:
    values = [
        cv2.Laplacian(luma(degrade(image, "blurring", lv)), cv2.CV_64F).var() for lv in _levels("blurring")
    ]
    assert _monotone(values, -1) >= 0.9


def blockiness(image: np.ndarray) -> float:
    """Mean |jump| across 8-px block boundaries over the mean |jump| inside blocks (horizontal + vertical)."""
    y = luma(image)
    dx, dy = np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0))
    bx, by = (np.arange(dx.shape[1]) % 8) == 7, (np.arange(dy.shape[0]) % 8) == 7
    boundary = np.concatenate([dx[:, bx].ravel(), dy[by].ravel()]).mean()
    inside = np.concatenate([dx[:, ~bx].ravel(), dy[~by].ravel()]).mean()
    return float(boundary / max(inside, 1e-9))


def test_blocking_raises_blockiness(image: np.ndarray) -> None:
    assert _monotone([blockiness(degrade(image, "blocking", lv)) for lv in _levels("blocking")], 1) >= 0.9


def test_ringing_energy_grows_in_edge_blocks_only(image: np.ndarray) -> None:
    edges = edge_blocks(image)
    mask = np.kron(edges, np.ones((8, 8), bool))[: image.shape[0], : image.shape[1]]
    energies = []
    for lv in _levels("ringing"):
        out = degrade(image, "ringing", lv)
        np.testing.assert_array_equal(out[~mask], image[~mask])  # flat blocks untouched, exactly
        energies.append(float(((out.astype(float) - image)[mask] ** 2).mean()))
    assert _monotone(energies, 1) >= 0.9


def test_bleeding_changes_chroma_not_luma(image: np.ndarray) -> None:
    energies = []
    for lv in _levels("bleeding"):
        out = degrade(image, "bleeding", lv)
        assert np.abs(luma(out) - luma(image)).max() <= 1.0  # luma kept up to rounding
        ycc_out = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb).astype(float)[..., 1:]
        ycc_in = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(float)[..., 1:]
        energies.append(float(((ycc_out - ycc_in) ** 2).mean()))
    assert _monotone(energies, 1) >= 0.9


@pytest.mark.parametrize("kind", ["gain", "quant"])
def test_flicker_oscillation_grows_with_level(kind: str) -> None:
    clip = pan_clip(load_still("coffee"), 64, 16)
    amplitudes = []
    for lv in range(4):
        out = flicker_level(clip, lv, kind, period=2)
        quality = (
            np.array([psnr(c, o) for c, o in zip(clip, out, strict=True)])
            if kind == "quant"
            else luma(out).mean(axis=(1, 2))
        )
        amplitudes.append(float(np.abs(np.diff(quality)).mean()) if lv else 0.0)
    assert _monotone(amplitudes, 1) >= 0.9


def _integer_shift(a: np.ndarray, b: np.ndarray, radius: int = 5) -> tuple[int, int]:
    """The integer (dx, dy) minimising the mean |b(x + d) − a(x)| over the overlap (brute force)."""
    best, arg = np.inf, (0, 0)
    h, w = a.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            pa = a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
            pb = b[max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
            cost = np.abs(pa - pb).mean()
            if cost < best:
                best, arg = cost, (dx, dy)
    return arg


@pytest.mark.parametrize("delta", FLOAT_DELTAS)
def test_floating_region_moves_by_delta(delta: int) -> None:
    rng = np.random.default_rng(delta)
    background, texture = load_still("rocket"), load_still("gravel")
    camera = (2, 1)
    clip, (rx, ry, w, h) = floating_clip(background, texture, 96, 3, camera, (delta, 0), 48, rng)
    gray = luma(clip)
    # the region window moves with the scene (−camera on screen); its content moves by δ relative to it
    first = gray[0, ry : ry + h, rx : rx + w]
    second = gray[1, ry - camera[1] : ry - camera[1] + h, rx - camera[0] : rx - camera[0] + w]
    assert _integer_shift(first, second) == (delta, 0)
    # the background outside the region moves rigidly with the camera: relative displacement 0
    bg0, bg1 = gray[0, :, 60:90], gray[1, :, 60:90]
    assert _integer_shift(bg0, bg1) == (-camera[0], -camera[1])


def test_pan_trajectory_reference_and_bounds() -> None:
    path = pan_trajectory(512, 512, 256, 64)
    np.testing.assert_allclose(path[25], [64 + 60 * np.sin(np.pi * 1.0), 64 + 40 * 1.0], atol=1e-9)
    chelsea = pan_trajectory(300, 451, 256, 64)
    assert chelsea[:, 1].max() <= 44 and chelsea[:, 0].max() <= 195
    assert np.abs(np.diff(chelsea, axis=0)).sum(1).mean() >= 1.0


def test_patch_set_labels_follow_their_generator() -> None:
    """Each patch is labelled positive only for the PEA that made it (level ≥ 2), and blurred positives really
    are smoother than the clean patches of the same stills (labels stay aligned with their patches)."""
    from sstam.datasets import IGNORE, build_patch_set
    from sstam.synth import SPATIAL_PEAS

    data = build_patch_set(["coffee", "chelsea"], 6, 64, seed=3)
    positives = data.labels == 1.0
    assert positives.sum(axis=1).max() == 1
    rows, heads = np.nonzero(positives)
    assert np.array_equal(data.pea[rows], heads) and (data.level[rows] >= 2).all()
    clean = data.pea == -1
    assert (data.labels[clean] == 0.0).all()
    assert (data.labels[data.level == 1] != 1.0).all() and (data.labels == IGNORE).any()

    def sharpness(patches: np.ndarray) -> np.ndarray:
        grey = patches.astype(np.float32).mean(axis=3)
        return np.asarray([cv2.Laplacian(g, cv2.CV_32F).var() for g in grey])

    blurred = positives[:, SPATIAL_PEAS.index("blurring")]
    assert blurred.sum() >= 10
    assert np.median(sharpness(data.patches[blurred])) < 0.5 * np.median(sharpness(data.patches[clean]))


def test_invisible_floating_positives_are_ignored() -> None:
    """0.4 rule: a floating positive whose region barely differs from its consistent twin is not labelled."""
    from sstam.datasets import IGNORE, build_cube_set

    kw = {"stills": ["coffee", "camera"], "n_per_class": 6, "frames": 3, "patch": 64, "seed": 1}
    strict = build_cube_set(**kw, visible_threshold=1e9)
    loose = build_cube_set(**kw, visible_threshold=0.0)
    default = build_cube_set(**kw)
    positive = np.isin(loose.kind, ["floating_drift", "floating_frozen"])
    assert positive.sum() == 6
    np.testing.assert_array_equal(strict.labels[positive, 1], IGNORE)
    np.testing.assert_array_equal(loose.labels[positive, 1], 1.0)
    # the default keeps exactly the positives whose region-mean change vs the twin reaches 1 grey level
    index = np.flatnonzero(positive)
    change = np.abs(default.cubes[index].astype(float) - default.cubes[index + 1].astype(float))
    visible = change.reshape(len(index), -1).max(axis=1) > 0
    assert np.all(default.labels[index[~visible], 1] == IGNORE)
    np.testing.assert_array_equal(default.labels[index, 1] == 1.0, default.labels[index, 1] != IGNORE)
    # negatives are unaffected
    np.testing.assert_array_equal(default.labels[~positive], loose.labels[~positive])
