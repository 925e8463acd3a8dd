"""Block masks over demonstration frames (spec §2.3) and the masked-dataset weights (§2.4)."""

from __future__ import annotations

import numpy as np

from paperlab_core.errors import ConfigError


def num_blocks(length: int, block: int) -> int:
    """B = ⌈T / block⌉."""
    if block < 1:
        raise ConfigError(f"block must be ≥ 1, got {block}")
    return -(-length // block)


def generate_grids(n_masks: int, num_demos: int, blocks: int, keep_p: float, seed: int) -> np.ndarray:
    """Bernoulli(p) grids g ∈ {0,1}^{N×D×B}; ``keep_p`` is the probability of KEEPING a cell."""
    if not 0.0 < keep_p < 1.0:
        raise ConfigError(f"keep_p (probability of keeping a block) must be in (0, 1), got {keep_p}")
    if n_masks < 1:
        raise ConfigError(f"n_masks must be ≥ 1, got {n_masks}")
    rng = np.random.default_rng(seed)
    return (rng.random((n_masks, num_demos, blocks)) < keep_p).astype(np.uint8)


def grids_to_masks(grids: np.ndarray, length: int, block: int) -> np.ndarray:
    """Repeat each grid cell ``block`` times along time and crop to T: (N, D, B) → (N, D, T)."""
    return np.repeat(grids, block, axis=-1)[..., :length]


def generate_masks(
    n_masks: int, shape: tuple[int, int], keep_p: float = 0.5, block: int = 10, seed: int = 0
) -> np.ndarray:
    """Frame masks M ∈ {0,1}^{N×D×T}, constant within each ``block``-frame block (official ``generate_masks_ts``)."""
    num_demos, length = shape
    grids = generate_grids(n_masks, num_demos, num_blocks(length, block), keep_p, seed)
    return grids_to_masks(grids, length, block)


def frame_weights(masks: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-model weights over the valid frames: (N, D, T) masks → (N, F) in {0, 1}, F = number of valid frames."""
    flat = np.flatnonzero(valid.reshape(-1))
    return masks.reshape(masks.shape[0], -1)[:, flat].astype(np.float64)


def deletion_grid(
    scores: np.ndarray, usable: np.ndarray, fraction: float, mode: str, seed: int = 0
) -> np.ndarray:
    """Keep-grid (D, B) removing ``fraction`` of the usable blocks: ``top``/``bottom`` by score or ``random``.

    ``usable`` marks blocks that contain at least one valid frame; NaN scores count as 0.
    """
    idx = np.flatnonzero(usable.reshape(-1))
    k = round(fraction * idx.size)
    values = np.nan_to_num(scores.reshape(-1)[idx], nan=0.0)
    if mode == "top":
        chosen = idx[np.argsort(-values, kind="stable")[:k]]
    elif mode == "bottom":
        chosen = idx[np.argsort(values, kind="stable")[:k]]
    elif mode == "random":
        chosen = np.random.default_rng(seed).choice(idx, size=k, replace=False)
    else:
        raise ConfigError(f"deletion mode must be top, bottom or random, got {mode!r}")
    grid = np.ones(scores.size, dtype=np.uint8)
    grid[chosen] = 0
    return grid.reshape(scores.shape)


def percentile_keep_mask(frame_map: np.ndarray, valid: np.ndarray, percentile: float) -> np.ndarray:
    """Official Q2 variant (``load_mask_from_im``): keep frames whose importance is ≤ the given quantile.

    The quantile is taken per frame over the whole valid (D, T) map, so 0.6 removes the top 40 %.
    """
    threshold = np.quantile(frame_map[valid], percentile)
    return ((frame_map <= threshold) & valid).astype(np.uint8)
