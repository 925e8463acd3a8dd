from __future__ import annotations

import numpy as np
import pytest
from r2rise.learners import fit_ensemble
from r2rise.masks import (
    deletion_grid,
    frame_weights,
    generate_grids,
    generate_masks,
    grids_to_masks,
    percentile_keep_mask,
)


@pytest.mark.parametrize("length", [200, 23])
def test_masks_constant_within_blocks(length):
    masks = generate_masks(50, (3, length), keep_p=0.5, block=10, seed=0)
    assert masks.shape == (50, 3, length)
    assert set(np.unique(masks)) <= {0, 1}
    for start in range(0, length, 10):
        chunk = masks[..., start : start + 10]
        assert np.all(chunk == chunk[..., :1])


@pytest.mark.parametrize("keep_p", [0.1, 0.5, 0.9])
def test_keep_rate_within_three_standard_errors(keep_p):
    n, d, b = 400, 5, 20
    grids = generate_grids(n, d, b, keep_p, seed=3)
    se = np.sqrt(keep_p * (1 - keep_p) / (n * d * b))
    assert abs(grids.mean() - keep_p) < 3 * se


def test_masks_deterministic_per_seed():
    a = generate_masks(20, (4, 50), 0.5, 10, seed=7)
    b = generate_masks(20, (4, 50), 0.5, 10, seed=7)
    c = generate_masks(20, (4, 50), 0.5, 10, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_keep_probability():
    with pytest.raises(ValueError, match="keep_p"):
        generate_grids(3, 2, 2, 1.5, 0)


def test_frame_weights_drop_exactly_masked_frames():
    valid = np.ones((2, 25), dtype=bool)
    valid[1, 20:] = False
    masks = generate_masks(30, (2, 25), 0.5, 10, seed=1)
    weights = frame_weights(masks, valid)
    assert weights.shape == (30, valid.sum())
    np.testing.assert_array_equal(weights.sum(axis=1), (masks * valid).sum(axis=(1, 2)))
    np.testing.assert_array_equal(weights[:, :25], masks[:, 0])


def test_dropped_frame_labels_do_not_matter(planted_demos):
    obs, actions, _ = planted_demos.frames()
    masks = generate_masks(3, (planted_demos.num_demos, planted_demos.length), 0.5, 10, seed=2)
    weights = frame_weights(masks, planted_demos.valid)
    base = fit_ensemble(obs, actions, weights, 2, steps=30)
    changed = actions.copy()
    dropped = weights.sum(axis=0) == 0  # frames dropped by every model
    assert dropped.any()
    changed[dropped] = 1 - changed[dropped]
    other = fit_ensemble(obs, changed, weights, 2, steps=30)
    for key in base.params:
        assert np.array_equal(base.params[key].numpy(), other.params[key].numpy())
    assert (changed == 0).any()  # action 0 is an ordinary label


def test_empty_mask_is_a_clear_error(planted_demos):
    obs, actions, _ = planted_demos.frames()
    weights = np.ones((3, len(actions)))
    weights[1] = 0
    with pytest.raises(ValueError, match=r"model\(s\) \[1\] have no kept frame"):
        fit_ensemble(obs, actions, weights, 2, steps=1)


def test_deletion_grid_modes():
    scores = np.arange(20, dtype=float).reshape(2, 10)
    usable = np.ones_like(scores, dtype=bool)
    top = deletion_grid(scores, usable, 0.2, "top")
    bottom = deletion_grid(scores, usable, 0.2, "bottom")
    rand = deletion_grid(scores, usable, 0.2, "random", seed=0)
    assert set(np.flatnonzero(top == 0)) == {16, 17, 18, 19}
    assert set(np.flatnonzero(bottom == 0)) == {0, 1, 2, 3}
    assert (rand == 0).sum() == 4


def test_paper_percentile_removes_top_forty_percent():
    frame_map = np.arange(100, dtype=float).reshape(2, 50)
    keep = percentile_keep_mask(frame_map, np.ones((2, 50), dtype=bool), 0.6)
    assert keep.sum() == 60
    assert keep.reshape(-1)[:60].all()


def test_grids_to_masks_crops():
    grids = np.array([[[1, 0, 1]]], dtype=np.uint8)
    np.testing.assert_array_equal(grids_to_masks(grids, 7, 3), [[[1, 1, 1, 0, 0, 0, 1]]])
