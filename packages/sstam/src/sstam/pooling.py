"""PEA intensity by saliency-weighted pooling (spec §2.6, proposed; PEA265's own formula is unknown).

Per frame (or window): ``I^k_t = Σ_i w_{t,i} · p^k_{t,i} / Σ_i w_{t,i}`` (``soft``), or with ``p`` replaced by
``1[p > 0.5]`` (``threshold``: the proportion of PEA-positive patches). Video level: ``I^k = agg_t I^k_t`` with
``agg ∈ {mean, max, p90}``.
"""

from __future__ import annotations

import numpy as np

POOLING_MODES = ("soft", "threshold")
AGGREGATIONS = ("mean", "max", "p90")


def pool_intensity(
    probs: np.ndarray, weights: np.ndarray, mode: str = "soft", threshold: float = 0.5
) -> np.ndarray:
    """``probs [..., N, K]`` (or ``[..., N]``) and ``weights [..., N]`` → ``[..., K]`` (or ``[...]``)."""
    probs = np.asarray(probs, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if mode == "threshold":
        probs = (probs > threshold).astype(np.float64)
    elif mode != "soft":
        raise ValueError(f"pooling.mode must be one of {', '.join(POOLING_MODES)}, got {mode!r}")
    squeeze = probs.ndim == weights.ndim
    if squeeze:
        probs = probs[..., None]
    total = weights.sum(axis=-1)
    pooled = (weights[..., None] * probs).sum(axis=-2) / np.where(total > 0, total, 1.0)[..., None]
    return pooled[..., 0] if squeeze else pooled


def aggregate(values: np.ndarray, agg: str = "mean", axis: int = 0) -> np.ndarray:
    """Video-level aggregation over frames/windows: mean, max or the 90th percentile."""
    values = np.asarray(values, dtype=np.float64)
    if agg == "mean":
        return values.mean(axis=axis)
    if agg == "max":
        return values.max(axis=axis)
    if agg == "p90":
        return np.percentile(values, 90, axis=axis)
    raise ValueError(f"pooling.agg must be one of {', '.join(AGGREGATIONS)}, got {agg!r}")


def top_k_mask(weights: np.ndarray, k: int | None) -> np.ndarray:
    """Boolean ``[..., N]`` mask of the ``k`` largest weights per row (all when ``k`` is None or ≥ N)."""
    weights = np.asarray(weights)
    n = weights.shape[-1]
    if k is None or k >= n:
        return np.ones(weights.shape, dtype=bool)
    order = np.argsort(-weights, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(weights.shape, dtype=bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask
