"""More temporal training content (0.5): extra stills, generated images, augmented views — content-disjoint."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sstam.datasets import augment_still, build_cube_set, dead_leaves, fractal_noise, procedural_images
from sstam.stills import EXTRA_STILLS, HELDOUT_STILLS, TRAIN_STILLS, content_of, load_still

from paperlab_core.errors import ConfigError


def _laplacian_var(image: np.ndarray) -> float:
    return float(cv2.Laplacian(image.astype(np.float32).mean(axis=2), cv2.CV_32F).var())


@pytest.mark.parametrize("name", EXTRA_STILLS)
def test_extra_stills_are_rgb_uint8_and_new_contents(name: str) -> None:
    image = load_still(name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert 128 <= min(image.shape[:2]) and max(image.shape[:2]) <= 640
    assert image.std() > 5.0  # not a blank conversion (bool / float / RGBA inputs)
    assert content_of(name) not in {content_of(s) for s in (*HELDOUT_STILLS, *TRAIN_STILLS)}


def test_augment_still_is_a_seeded_random_view() -> None:
    still = load_still("coffee")
    a = augment_still(still, np.random.default_rng(5), min_side=128)
    b = augment_still(still, np.random.default_rng(5), min_side=128)
    c = augment_still(still, np.random.default_rng(6), min_side=128)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and min(a.shape[:2]) >= 128 and a.flags.c_contiguous
    assert a.shape != c.shape or np.abs(a.astype(int) - c).mean() > 5.0
    # a small image is never shrunk below min_side
    small = np.ascontiguousarray(still[:130, :140])
    assert min(augment_still(small, np.random.default_rng(0), min_side=128).shape[:2]) >= 128


def test_generated_images_are_deterministic_and_1f_noise_is_smooth() -> None:
    np.testing.assert_array_equal(fractal_noise(128, seed=3), fractal_noise(128, seed=3))
    images = procedural_images(4, size=128)
    assert list(images) == ["deadleaves_t0", "noise_t1", "deadleaves_t2", "noise_t3"]
    # 1/f^beta (beta >= 1.8) concentrates energy at low frequencies: far smoother than the dead leaves' edges
    assert _laplacian_var(images["noise_t1"]) < 0.5 * _laplacian_var(dead_leaves(128, seed=2000))


def test_without_the_new_options_the_cubes_are_unchanged() -> None:
    kw = {"stills": ["coffee", "grass"], "n_per_class": 4, "frames": 3, "patch": 64, "seed": 2}
    plain, same = build_cube_set(**kw), build_cube_set(**kw, procedural=0, augment=False)
    np.testing.assert_array_equal(plain.cubes, same.cubes)
    np.testing.assert_array_equal(plain.labels, same.labels)
    richer = build_cube_set(**kw, procedural=2, augment=True)
    assert richer.cubes.shape == plain.cubes.shape and not np.array_equal(richer.cubes, plain.cubes)
    assert {"deadleaves_t0", "noise_t1"} & set(richer.content.tolist())


def test_temporal_training_contents_are_disjoint_from_held_out() -> None:
    from sstam.data import SSTAMData

    data = SSTAMData(
        stage="temporal",
        temporal_per_class=30,
        temporal_val_per_class=4,
        temporal_stills=list(EXTRA_STILLS),
        temporal_procedural=2,
        temporal_augment=True,
    )
    data.setup("fit")
    train, val = data.train_sets[1], data.val_sets[1]
    train_contents, held = set(train.content.tolist()), {content_of(s) for s in HELDOUT_STILLS}
    assert train_contents.isdisjoint(held)
    assert {"retina", "colorwheel", "noise_t1"} <= train_contents  # the extras are used
    # validation cubes: held-out stills only, never augmented (identical to the plain generator's)
    assert set(val.content.tolist()) <= held
    reference = build_cube_set(HELDOUT_STILLS, 4, 8, 64, 1, min_positive_level=1, visible_threshold=1.0)
    np.testing.assert_array_equal(val.cubes, reference.cubes)


@pytest.mark.parametrize("bad", [{"temporal_stills": ["astronaut"]}, {"temporal_stills": ["nosuch"]}])
def test_held_out_or_unknown_temporal_stills_are_refused(bad: dict) -> None:
    from sstam.data import SSTAMData

    with pytest.raises(ConfigError):
        SSTAMData(**bad)


def test_quantisation_flicker_emphasis_options() -> None:
    kw = {"stills": ["coffee", "grass"], "n_per_class": 8, "frames": 3, "patch": 64, "seed": 2}
    plain = build_cube_set(**kw)
    same = build_cube_set(**kw, quant_share=0.5, quant_levels=None, static_quant=0.0)
    np.testing.assert_array_equal(plain.cubes, same.cubes)  # the defaults are the 0.5.0 cubes
    np.testing.assert_array_equal(plain.labels, same.labels)
    kinds = plain.kind.tolist()
    assert kinds.count("flicker_quant") == kinds.count("flicker_gain") == 4
    more = build_cube_set(**kw, quant_share=0.75, quant_levels=[1, 2], static_quant=1.0)
    k = more.kind
    assert (k == "flicker_quant").sum() == 6 and (k == "flicker_gain").sum() == 2
    assert (k == "constant_quant").sum() == 6  # every quantisation positive keeps its matched control
    assert set(more.level[k == "flicker_quant"].tolist()) <= {1, 2}
    assert (more.labels[k == "flicker_quant", 0] == 1).all()
    # every distractor is a constant-quality JPEG pan: flicker negative, and static (8×8 block artefacts)
    static = np.flatnonzero(k == "static_quant")
    assert len(static) == 8 and not ({"clean", "blur_only"} & set(k.tolist()))
    assert (more.labels[static] == 0).all()
    assert len(more) == len(plain)
    with pytest.raises(ValueError):
        build_cube_set(**kw, quant_levels=[0])
    with pytest.raises(ValueError):
        build_cube_set(**kw, quant_share=1.5)


@pytest.mark.parametrize(
    "bad",
    [{"temporal_quant_share": -0.1}, {"temporal_static_quant": 2.0}, {"temporal_quant_levels": [4]}],
)
def test_bad_quantisation_emphasis_options_are_refused(bad: dict) -> None:
    from sstam.data import SSTAMData

    with pytest.raises(ConfigError):
        SSTAMData(**bad)


def test_quantisation_emphasis_leaves_validation_cubes_unchanged() -> None:
    from sstam.data import SSTAMData

    data = SSTAMData(
        stage="temporal",
        temporal_per_class=8,
        temporal_val_per_class=4,
        temporal_quant_share=1.0,
        temporal_quant_levels=[1],
        temporal_static_quant=0.5,
    )
    data.setup("fit")
    train, val = data.train_sets[1], data.val_sets[1]
    assert "flicker_gain" not in train.kind.tolist() and "static_quant" in train.kind.tolist()
    assert set(train.level[train.kind == "flicker_quant"].tolist()) == {1}
    reference = build_cube_set(HELDOUT_STILLS, 4, 8, 64, 1, min_positive_level=1, visible_threshold=1.0)
    np.testing.assert_array_equal(val.cubes, reference.cubes)
