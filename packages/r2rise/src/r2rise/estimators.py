"""Importance estimators over mask cells (spec §2.7) and the scores used by the three questions (§2.8).

All estimators take masks of shape (N, *cells) (frame masks (N, D, T) or block grids (N, D, B)) and the returns
R (N,) of the models retrained on them, and return an array of shape ``cells``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats


def _flat(masks: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    returns = np.asarray(returns, dtype=np.float64)
    if masks.shape[0] != returns.shape[0]:
        raise ValueError(f"masks have {masks.shape[0]} rows but there are {returns.shape[0]} returns")
    return masks.reshape(masks.shape[0], -1).astype(np.float64), returns


def raw_map(masks: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """Official code: IM = Σ_{i=1}^{N} R̄_i · M_i (no normalisation, no baseline)."""
    flat, returns = _flat(masks, returns)
    return (returns @ flat).reshape(masks.shape[1:])


def rise_map(masks: np.ndarray, returns: np.ndarray, keep_p: float) -> np.ndarray:
    """RISE normalisation (Petsiuk et al. 2018, eq. 6): S = Σ_i R_i M_i / (N · E[M]) with E[M] = p."""
    return raw_map(masks, returns) / (masks.shape[0] * keep_p)


def centred_map(masks: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """E[R | M_c = 1] − E[R | M_c = 0] per cell; NaN (with a warning) where a cell is always kept or dropped."""
    flat, returns = _flat(masks, returns)
    kept = flat.sum(axis=0)
    dropped = flat.shape[0] - kept
    sum_kept = returns @ flat
    sum_dropped = returns.sum() - sum_kept
    degenerate = (kept == 0) | (dropped == 0)
    if degenerate.any():
        warnings.warn(
            f"centred estimator: {int(degenerate.sum())} cell(s) were always kept or always dropped; set to NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        out = sum_kept / kept - sum_dropped / dropped
    out[degenerate] = np.nan
    return out.reshape(masks.shape[1:])


def linear_map(masks: np.ndarray, returns: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Datamodel / Banzhaf-style ridge regression R_i ≈ β₀ + Σ_c β_c z_ic on standardised masks z; returns β.

    Cells with zero variance get β = 0. ``ridge`` is λ in min ‖y − Zβ‖² + λ‖β‖².
    """
    flat, returns = _flat(masks, returns)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    constant = std == 0
    z = (flat - mean) / np.where(constant, 1.0, std)
    z[:, constant] = 0.0
    y = returns - returns.mean()
    gram = z.T @ z + ridge * np.eye(z.shape[1])
    beta = np.linalg.solve(gram, z.T @ y)
    beta[constant] = 0.0
    return beta.reshape(masks.shape[1:])


def all_maps(
    grids: np.ndarray,
    frame_masks: np.ndarray,
    returns: np.ndarray,
    keep_p: float,
    ridge: float = 1.0,
    block: int = 10,
) -> dict[str, np.ndarray]:
    """Every estimator per block (``<name>_block``, (D, B)) and per frame (``<name>_frame``, (D, T)).

    Frame-level ``raw``/``rise`` are computed on the frame masks; ``centred``/``linear`` are block quantities (masks
    are constant within blocks), repeated over the frames of each block.
    """
    length = frame_masks.shape[-1]
    maps = {
        "raw_block": raw_map(grids, returns),
        "rise_block": rise_map(grids, returns, keep_p),
        "centred_block": centred_map(grids, returns),
        "linear_block": linear_map(grids, returns, ridge),
        "raw_frame": raw_map(frame_masks, returns),
        "rise_frame": rise_map(frame_masks, returns, keep_p),
    }
    for name in ("centred", "linear"):
        maps[f"{name}_frame"] = np.repeat(maps[f"{name}_block"], block, axis=-1)[..., :length]
    return maps


def compressed_map(frame_map: np.ndarray, block: int = 10) -> np.ndarray:
    """Official compressed map: sum over demonstrations, then sum within ``block``-frame blocks → ⌈T/block⌉ values."""
    per_time = np.nansum(frame_map, axis=0)
    pad = (-per_time.size) % block
    return np.concatenate([per_time, np.zeros(pad)]).reshape(-1, block).sum(axis=1)


def permutation_test(grids: np.ndarray, returns: np.ndarray, permutations: int = 1000, seed: int = 0) -> dict:
    """Q1 test of uniform importance: S = Σ_c centred_c², null by permuting R across masks.

    p = (1 + #{S_perm ≥ S}) / (1 + P). Cells that are always kept or dropped are ignored.
    """
    flat, returns = _flat(grids, returns)
    kept = flat.sum(axis=0)
    usable = (kept > 0) & (kept < flat.shape[0])
    flat = flat[:, usable]
    kept = kept[usable]
    dropped = flat.shape[0] - kept
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(returns) for _ in range(permutations)])
    all_r = np.vstack([returns[None], perms])
    sum_kept = all_r @ flat
    centred = sum_kept / kept - (all_r.sum(axis=1, keepdims=True) - sum_kept) / dropped
    statistic = (centred**2).sum(axis=1)
    p_value = (1 + np.sum(statistic[1:] >= statistic[0])) / (1 + permutations)
    return {"statistic": float(statistic[0]), "p_value": float(p_value), "permutations": permutations}


def returns_summary(returns: np.ndarray) -> dict[str, float]:
    """Official Q1 summary of R̄_i across masks (min, max, mean, std)."""
    returns = np.asarray(returns, dtype=np.float64)
    return {
        "min": float(returns.min()),
        "max": float(returns.max()),
        "mean": float(returns.mean()),
        "std": float(returns.std()),
    }


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative) + ½·P(tie): the Mann–Whitney form of ROC AUC."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    keep = np.isfinite(scores)
    scores, positive = scores[keep], positive[keep]
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs at least one positive and one negative cell")
    ranks = stats.rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def rank_agreement(a: np.ndarray, b: np.ndarray, top_fraction: float = 0.2) -> dict[str, float]:
    """Q3: Spearman ρ, Kendall τ and top-``top_fraction`` Jaccard overlap of two maps (finite cells only)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    k = max(1, round(top_fraction * a.size))
    top_a, top_b = set(np.argsort(-a)[:k].tolist()), set(np.argsort(-b)[:k].tolist())
    return {
        "spearman": float(stats.spearmanr(a, b).statistic),
        "kendall": float(stats.kendalltau(a, b).statistic),
        "top_jaccard": len(top_a & top_b) / len(top_a | top_b),
    }


def minmax(x: np.ndarray) -> np.ndarray:
    """Min–max scaling to [0, 1] (NaN-aware), as the official visualisation does before ×255."""
    lo, hi = np.nanmin(x), np.nanmax(x)
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x, dtype=np.float64)


def top_frames(frame_map: np.ndarray, k: int = 20) -> np.ndarray:
    """Per-demonstration indices of the ``k`` most important frames (descending), as ``load_existing_im`` lists."""
    values = np.nan_to_num(frame_map, nan=-np.inf)
    return np.argsort(-values, axis=1, kind="stable")[:, :k]
