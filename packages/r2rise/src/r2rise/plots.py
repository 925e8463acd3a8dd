"""Figures (matplotlib, Agg backend): heatmaps, compressed maps, Q1 histogram, Q2 deletion curves, Q3 scatter."""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from paperlab_core.logging import atomic_open


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def heatmap(
    frame_map: np.ndarray,
    path: str | os.PathLike[str],
    title: str,
    valid: np.ndarray | None = None,
    corrupted: np.ndarray | None = None,
    block: int = 10,
) -> Path:
    """Map over demonstrations × time (D rows × T columns), colour bar; corrupted blocks outlined in red."""
    values = np.array(frame_map, dtype=np.float64)
    if valid is not None:
        values[~valid] = np.nan
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.45 * values.shape[0]))
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis")
    fig.colorbar(image, ax=ax, label="importance")
    if corrupted is not None:
        for d, b in zip(*np.nonzero(corrupted), strict=True):
            ax.add_patch(
                Rectangle((b * block - 0.5, d - 0.5), block, 1, fill=False, edgecolor="red", linewidth=1.0)
            )
    ax.set_xlabel("frame (time step)")
    ax.set_ylabel("demonstration")
    ax.set_title(title if corrupted is None else f"{title} — red boxes: corrupted blocks")
    return _save(fig, path)


def compressed_bar(values: np.ndarray, path: str | os.PathLike[str], title: str, block: int = 10) -> Path:
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.bar(np.arange(values.size) * block, values, width=block * 0.9, align="edge")
    ax.set_xlabel(f"frame block ({block} frames, summed over demonstrations)")
    ax.set_ylabel("importance")
    ax.set_title(title)
    return _save(fig, path)


def returns_histogram(returns: np.ndarray, path: str | os.PathLike[str], title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(returns, bins=30)
    ax.set_xlabel("mean return of the retrained model")
    ax.set_ylabel("masks")
    ax.set_title(title)
    return _save(fig, path)


def deletion_curves(
    curves: dict[str, list[tuple[float, float, float]]], path: str | os.PathLike[str], title: str
) -> Path:
    """``curves[mode]`` = [(fraction, mean, std), ...] for top / random / bottom deletion."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode, points in curves.items():
        xs, means, stds = (np.asarray(v) for v in zip(*points, strict=True))
        ax.errorbar(100 * xs, means, yerr=stds, marker="o", capsize=3, label=f"remove {mode}-k")
    ax.set_xlabel("blocks removed (%)")
    ax.set_ylabel("mean return after retraining")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def scatter(
    a: np.ndarray,
    b: np.ndarray,
    path: str | os.PathLike[str],
    labels: tuple[str, str],
    title: str,
    highlight: np.ndarray | None = None,
) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if highlight is None:
        ax.scatter(a, b, s=12)
    else:
        mark = np.asarray(highlight).reshape(-1)
        ax.scatter(a[~mark], b[~mark], s=12, label="clean block")
        ax.scatter(a[mark], b[mark], s=12, label="corrupted block")
        ax.legend()
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    return _save(fig, path)
