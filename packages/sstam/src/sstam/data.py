"""Data: the embedded synthetic default, PEA265-style patch folders and VQA databases with MOS (spec §3).

``SSTAMData`` (LightningDataModule) serves spatial patches and temporal cubes (a ``CombinedLoader`` when both
detectors train) and, for the fusion stage, the items the regressor is fitted on: a codec ladder of pans over the
train stills with proxy MOS = VMAF (default), or ``--data.mos_csv`` + ``--data.video_root`` (real MOS).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from paperlab_core.errors import ConfigError, MissingFileError, UserError
from paperlab_core.logging import log
from sstam.codec import have_codecs
from sstam.datasets import (
    IGNORE,
    CubeSet,
    DegradedPool,
    PatchSet,
    build_cube_set,
    build_patch_set,
    check_cube_options,
)
from sstam.inputs import parse_size
from sstam.metrics import content_ids
from sstam.stills import ALL_STILLS, HELDOUT_STILLS, TRAIN_STILLS, content_of
from sstam.synth import PEAS, SPATIAL_PEAS, TEMPORAL_PEAS

STAGES = ("all", "spatial", "temporal", "fusion")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CLIP_SUFFIXES = (".npy", ".mp4", ".y4m", ".avi", ".mkv", ".mov", ".webm")
FUSION_STILLS = ("coffee", "chelsea", "rocket", "motorcycle_left", "coins", "grass")


class PatchDataset(Dataset):
    def __init__(self, data: PatchSet) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        d = self.data
        return (
            torch.from_numpy(d.patches[index]),
            torch.from_numpy(d.labels[index]),
            torch.tensor(int(d.pea[index])),
            torch.tensor(int(d.level[index])),
        )


class FreshPatchBatches(Dataset):
    """``steps`` batches per epoch, each freshly cropped from a :class:`DegradedPool` (ours; used with
    ``batch_size=None``). The pool's generator advances across epochs, so no patch is seen twice."""

    def __init__(self, pool: DegradedPool, steps: int, batch_size: int) -> None:
        self.pool, self.steps, self.batch_size = pool, steps, batch_size

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        patches, labels, pea, level = self.pool.sample(self.batch_size)
        return tuple(torch.from_numpy(a) for a in (patches, labels, pea, level))


class CubeDataset(Dataset):
    def __init__(self, data: CubeSet) -> None:
        self.data = data
        self.kinds = sorted(set(data.kind.tolist()))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        d = self.data
        return (
            torch.from_numpy(d.cubes[index]),
            torch.from_numpy(d.labels[index]),
            torch.tensor(bool(d.has_prev[index])),
            torch.tensor(self.kinds.index(str(d.kind[index]))),
            torch.tensor(int(d.level[index])),
        )


@dataclass
class FusionItem:
    """One video the fusion is fitted on: a file (or frames in memory) with its label and content id."""

    name: str
    label: float
    content: str
    path: str | None = None
    frames: np.ndarray | None = None
    size: tuple[int, int] | None = None
    fps: float | None = None
    pix_fmt: str = "yuv420p"
    extra: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------- PEA folders
def _fit_patch(image: np.ndarray, patch: int, policy: str) -> np.ndarray:
    h, w = image.shape[:2]
    if (h, w) == (patch, patch):
        return image
    if policy == "crop" and h >= patch and w >= patch:
        y, x = (h - patch) // 2, (w - patch) // 2
        return image[y : y + patch, x : x + patch]
    return cv2.resize(image, (patch, patch), interpolation=cv2.INTER_AREA)


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"image {path} cannot be read (expected png/jpg/bmp/tif)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _read_clip(path: Path) -> np.ndarray:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UserError(f"clip folder {path} holds no frames")
        return np.stack([_read_image(p) for p in files])
    if path.suffix.lower() == ".npy":
        clip = np.load(path, allow_pickle=False)
        if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3:
            raise UserError(f"clip {path} must be uint8 [T, H, W, 3], got {clip.dtype} {clip.shape}")
        return clip
    from sstam.video_io import read_frames

    return read_frames(path)[0]


def _fit_clip(clip: np.ndarray, frames: int, size: int, policy: str) -> tuple[np.ndarray, bool]:
    """``frames + 1`` frames (predecessor first) of ``size``²; a clip of exactly ``frames`` has no predecessor."""
    if len(clip) < frames:
        raise UserError(f"a temporal clip has {len(clip)} frames, fewer than L = {frames}")
    has_prev = len(clip) > frames
    clip = clip[: frames + 1] if has_prev else np.concatenate([clip[:1], clip[:frames]])
    return np.stack([_fit_patch(f, size, policy) for f in clip]), has_prev


def load_pea_folder(
    root: str | Path,
    patch: int = 64,
    frames: int = 8,
    cube: int = 64,
    patch_policy: str = "resize",
    content_regex: str = r"^([^_]+)",
    min_positive_level: int = 2,
) -> tuple[PatchSet | None, CubeSet | None, dict[str, np.ndarray]]:
    """``<root>/<pea>/{positive,negative}/<item>`` (+ optional ``meta.csv``) → spatial and temporal sets and the
    split of each item (``meta.csv`` ``split`` column, else a content hash: 80 % train / 20 % test).

    Each item is labelled for its own PEA only (other heads ignored). With a ``severity`` column, a positive of
    severity below ``min_positive_level`` is ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError("PEA folder", root, "expected <root>/<pea>/{positive,negative}/<item>")
    meta: dict[str, dict[str, str]] = {}
    if (root / "meta.csv").is_file():
        with (root / "meta.csv").open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                meta[row["path"].replace("\\", "/")] = row
    pattern = re.compile(content_regex)
    spatial_items: list[tuple] = []
    temporal_items: list[tuple] = []
    warned = False
    for pea in PEAS:
        for label_name, label in (("positive", 1.0), ("negative", 0.0)):
            folder = root / pea / label_name
            if not folder.is_dir():
                continue
            for item in sorted(folder.iterdir()):
                rel = item.relative_to(root).as_posix()
                row = meta.get(rel, {})
                severity = (
                    int(row["severity"]) if row.get("severity", "") not in ("", None) else (1 if label else 0)
                )
                value = label
                if label and row.get("severity", "") not in ("", None) and severity < min_positive_level:
                    value = IGNORE
                match = pattern.search(item.stem)
                content = row.get("content") or content_of(
                    match.group(1) if match and match.groups() else item.stem
                )
                split = row.get("split") or (
                    "test" if int(hashlib.sha1(content.encode()).hexdigest(), 16) % 5 == 0 else "train"
                )
                if pea in SPATIAL_PEAS and item.suffix.lower() in IMAGE_SUFFIXES:
                    image = _read_image(item)
                    if image.shape[:2] != (patch, patch) and not warned:
                        log(
                            f"sstam: warning: PEA folder patches differ from P = {patch}; {patch_policy} them"
                        )
                        warned = True
                    spatial_items.append(
                        (_fit_patch(image, patch, patch_policy), pea, value, severity, content, split)
                    )
                elif pea in TEMPORAL_PEAS and (item.is_dir() or item.suffix.lower() in CLIP_SUFFIXES):
                    clip, has_prev = _fit_clip(_read_clip(item), frames, cube, patch_policy)
                    temporal_items.append((clip, pea, value, severity, content, split, has_prev))
    if not spatial_items and not temporal_items:
        raise UserError(
            f"PEA folder {root} holds no items (expected <root>/<pea>/{{positive,negative}}/<item>)"
        )
    splits: dict[str, np.ndarray] = {}
    patch_set = cube_set = None
    if spatial_items:
        labels = np.full((len(spatial_items), len(SPATIAL_PEAS)), IGNORE, np.float32)
        for i, (_, pea, value, *_rest) in enumerate(spatial_items):
            labels[i, SPATIAL_PEAS.index(pea)] = value
        patch_set = PatchSet(
            np.stack([it[0] for it in spatial_items]),
            labels,
            np.asarray([SPATIAL_PEAS.index(it[1]) for it in spatial_items]),
            np.asarray([it[3] for it in spatial_items]),
            np.asarray([it[4] for it in spatial_items], dtype=object),
        )
        splits["spatial"] = np.asarray([it[5] for it in spatial_items])
    if temporal_items:
        labels = np.full((len(temporal_items), len(TEMPORAL_PEAS)), IGNORE, np.float32)
        for i, (_, pea, value, *_rest) in enumerate(temporal_items):
            labels[i, TEMPORAL_PEAS.index(pea)] = value
        cube_set = CubeSet(
            np.stack([it[0] for it in temporal_items]),
            labels,
            np.asarray([f"{it[1]}_{'pos' if it[2] == 1 else 'neg'}" for it in temporal_items]),
            np.asarray([it[3] for it in temporal_items]),
            np.asarray([it[4] for it in temporal_items], dtype=object),
            np.asarray([it[6] for it in temporal_items]),
        )
        splits["temporal"] = np.asarray([it[5] for it in temporal_items])
    return patch_set, cube_set, splits


# --------------------------------------------------------------------------------------------- MOS databases
def read_mos_csv(
    csv_path: str | Path,
    video_root: str | Path,
    content_regex: str = r"^([A-Za-z]+)",
    size: tuple[int, int] | None = None,
) -> list[FusionItem]:
    """``filename, mos`` (header optional; optional ``content, width, height, fps, pix_fmt``) → items."""
    csv_path, video_root = Path(csv_path), Path(video_root)
    if not csv_path.is_file():
        raise MissingFileError("MOS CSV", csv_path, "--data.mos_csv takes a CSV with filename,mos columns")
    if not video_root.is_dir():
        raise MissingFileError(
            "video folder", video_root, "--data.video_root holds the files named in the CSV"
        )
    with csv_path.open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.reader(handle) if r and any(c.strip() for c in r)]
    if not rows:
        raise UserError(f"MOS CSV {csv_path} is empty (expected filename,mos rows)")
    header = [c.strip().lower() for c in rows[0]]
    if "filename" in header and "mos" in header:
        records = [dict(zip(header, (c.strip() for c in r), strict=False)) for r in rows[1:]]
    else:
        records = [{"filename": r[0].strip(), "mos": r[1].strip() if len(r) > 1 else ""} for r in rows]
    items = []
    names = [r["filename"] for r in records]
    contents = content_ids(names, content_regex)
    for line, (record, content) in enumerate(zip(records, contents, strict=True), start=1):
        try:
            label = float(record["mos"])
        except (KeyError, ValueError):
            raise UserError(
                f"MOS CSV {csv_path} row {line}: mos {record.get('mos')!r} is not a number"
            ) from None
        path = video_root / record["filename"]
        if not path.is_file():
            raise MissingFileError("video", path, f"named in {csv_path} row {line}")
        item_size = size
        if record.get("width") and record.get("height"):
            item_size = (int(record["width"]), int(record["height"]))
        fps = float(record["fps"]) if record.get("fps") else None
        items.append(
            FusionItem(
                record["filename"],
                label,
                record.get("content") or content,
                str(path),
                None,
                item_size,
                fps,
                record.get("pix_fmt") or "yuv420p",
            )
        )
    return items


def ladder_items(
    folder: str | Path,
    stills: Sequence[str],
    clip_size: int,
    frames: int,
    codecs: Sequence[str],
    crfs: Sequence[int],
    qps: Sequence[int],
    preset: str = "medium",
) -> list[FusionItem]:
    """Encode the proxy-MOS ladder (label = VMAF) of pans over ``stills`` into ``folder``."""
    from sstam.codec import encode_ladder, have_codecs, write_ladder_csv
    from sstam.stills import load_still
    from sstam.synth import pan_clip
    from sstam.video_io import rgb_to_yuv420p

    if not have_codecs():
        raise UserError("the fusion ladder needs PyAV with libx264 (pip install av)")
    folder = Path(folder)
    rows: list[dict[str, Any]] = []
    for name in stills:
        clip = pan_clip(load_still(name), clip_size, frames)
        rows += encode_ladder(rgb_to_yuv420p(clip), folder, name, 25.0, codecs, crfs, qps, preset=preset)
    write_ladder_csv(folder / "ladder.csv", rows)
    return [
        FusionItem(
            r["filename"],
            float(r["vmaf"]),
            content_of(r["content"]),
            str(folder / r["filename"]),
            extra={k: r[k] for k in ("codec", "param", "psnr", "ssim", "bytes")},
        )
        for r in rows
    ]


# --------------------------------------------------------------------------------------------- the DataModule
class SSTAMData(LightningDataModule):
    """Spatial patches + temporal cubes (synthetic by default, or a PEA folder) and the fusion items.

    Args:
        stage: what ``train`` fits: all | spatial | temporal | fusion (``sstam train --stage``).
        train_stills / heldout_stills: still names for training and for validation/test (content-disjoint).
        spatial_per_level: training patches per (PEA, level) and epoch; clean patches: this × 4.
        spatial_sampling: ``fresh`` (ours, default): every batch is cropped anew from the degraded training
            contents (several scales + procedural dead-leaves images, dihedral flips) with severity-regression
            targets; ``fixed``: one patch set with binary labels, reused every epoch (memorised, see the notebook).
        spatial_scales / spatial_procedural: content scales and dead-leaves images of the fresh pool.
        spatial_chroma_420: pass the fresh pool's images through a 4:2:0 chroma round trip (ours).
        spatial_codecs / spatial_codec_crf / spatial_codec_qp: codec patches in the fresh pool (ours, 0.3): every
            training content through the x264 CRF / x265 QP ladder, rung r of R → target r / R on the blurring
            and blocking heads (``[]``: none).
        spatial_val_per_level: validation and test patches per (PEA, level) on the held-out stills.
        temporal_per_class: training cubes per class (5 cubes per step: flicker ±, floating ±, a distractor).
        temporal_stills: more stills for the temporal *training* cubes only (ours, 0.5; e.g. the scikit-image
            extras of ``sstam.stills.EXTRA_STILLS``); content-disjoint from the held-out stills.
        temporal_procedural: generated training images (dead leaves, 1/f noise) for the temporal cubes (ours).
        temporal_augment: a random zoom / crop / dihedral / colour-jitter view of every training background and
            floating texture (ours); validation and test cubes are never augmented.
        temporal_quant_share / temporal_quant_levels / temporal_static_quant: quantisation-flicker emphasis of
            the *training* cubes (ours, 0.5.1; :func:`sstam.datasets.build_cube_set`): the share of flicker pairs
            that are JPEG-quality pairs (0.5 = as before), their flicker levels (``[]``: 1–3) and the fraction of
            distractors that are constant-quality JPEG pans; validation and test cubes never use them.
        temporal_codec_static / temporal_codec_codecs: codec-made flicker negatives (ours, 0.5.2; 0 = off): the
            fraction of the training distractors (clean / blur-only / static JPEG) that is a pan encoded by x264 at
            one constant CRF or x265 at one constant QP, drawn from the range of ``fusion_crf`` / ``fusion_qp``
            (the ladder's), and decoded in memory (flicker −); validation and test cubes never use them.
        temporal_codec_motion: integer (as the other cubes) or subpixel (real-valued velocity, bilinear crops:
            the ladders' kind of pan) motion of the codec-made negatives.
        temporal_val_per_class: validation and test cubes per class on the held-out stills.
        min_positive_level: spatial positives are levels ≥ this (level 1 is ignored in training).
        temporal_min_positive_level: the same for flicker levels.
        visible_threshold: a positive patch (or floating region, ours 0.4) with mean |x' − x| below this (grey
            levels) is ignored.
        spatial_batch_size / temporal_batch_size: batch sizes of the two loaders.
        seed: seed of the synthetic sets (validation uses seed + 1, test seed + 2).
        pea_root: a PEA265-style folder used instead of the synthetic sets.
        content_regex: content id from a PEA-folder file name (first group).
        patch_policy: resize | crop patches whose size differs from P.
        mos_csv / video_root: a VQA database for the fusion (``filename, mos``), instead of the proxy ladder.
        score_direction: higher_better | lower_better (DMOS) of the MOS CSV.
        mos_content_regex: content id from a database file name.
        size: WxH of raw ``.yuv`` files in the database (when neither the CSV nor the file name says).
        fusion_stills: stills whose pans make the proxy ladder (label = VMAF v0.6.1).
        fusion_clip_size / fusion_frames: pan size and length of the ladder clips.
        fusion_codecs / fusion_crf / fusion_qp: ladder steps (x264 CRF, x265 QP).
        fusion_preset: x264/x265 preset of the ladder.
        ladder_dir: where the ladder is encoded (default: ``<run folder>/fusion-ladder``).
    """

    def __init__(
        self,
        stage: str = "all",
        train_stills: list[str] = list(TRAIN_STILLS),  # noqa: B006 - jsonargparse reads the default
        heldout_stills: list[str] = list(HELDOUT_STILLS),  # noqa: B006
        spatial_per_level: int = 400,
        spatial_sampling: str = "fresh",
        spatial_scales: list[float] = [1.0, 0.6],  # noqa: B006 - jsonargparse reads the default
        spatial_procedural: int = 2,
        spatial_chroma_420: bool = False,
        spatial_codecs: list[str] = [],  # noqa: B006 - jsonargparse reads the default
        spatial_codec_crf: list[int] = [28, 35, 42, 51],  # noqa: B006
        spatial_codec_qp: list[int] = [32, 37, 42, 51],  # noqa: B006
        spatial_val_per_level: int = 60,
        temporal_per_class: int = 400,
        temporal_val_per_class: int = 60,
        temporal_stills: list[str] = [],  # noqa: B006 - jsonargparse reads the default
        temporal_procedural: int = 0,
        temporal_augment: bool = False,
        temporal_quant_share: float = 0.5,
        temporal_quant_levels: list[int] = [],  # noqa: B006 - jsonargparse reads the default
        temporal_static_quant: float = 0.0,
        temporal_codec_static: float = 0.0,
        temporal_codec_codecs: list[str] = ["x264", "x265"],  # noqa: B006 - jsonargparse reads the default
        temporal_codec_motion: str = "integer",
        min_positive_level: int = 2,
        temporal_min_positive_level: int = 1,
        visible_threshold: float = 1.0,
        spatial_batch_size: int = 128,
        temporal_batch_size: int = 32,
        seed: int = 0,
        pea_root: str | None = None,
        content_regex: str = r"^([^_]+)",
        patch_policy: str = "resize",
        mos_csv: str | None = None,
        video_root: str | None = None,
        score_direction: str = "higher_better",
        mos_content_regex: str = r"^([A-Za-z]+)",
        size: str | None = None,
        fusion_stills: list[str] = list(FUSION_STILLS),  # noqa: B006
        fusion_clip_size: int = 128,
        fusion_frames: int = 32,
        fusion_codecs: list[str] = ["x264", "x265"],  # noqa: B006 - jsonargparse reads the default
        fusion_crf: list[int] = [28, 35, 42, 51],  # noqa: B006
        fusion_qp: list[int] = [32, 37, 42, 51],  # noqa: B006
        fusion_preset: str = "medium",
        ladder_dir: str | None = None,
    ) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ConfigError(f"data.stage must be one of {', '.join(STAGES)}, got {stage!r}")
        unknown = [
            s
            for s in [*train_stills, *heldout_stills, *fusion_stills, *temporal_stills]
            if s not in ALL_STILLS
        ]
        if unknown:
            raise ConfigError(
                f"unknown still(s) {', '.join(unknown)} (expected names from {', '.join(ALL_STILLS)})"
            )
        if temporal_procedural < 0:
            raise ConfigError(f"data.temporal_procedural must be ≥ 0, got {temporal_procedural}")
        check_cube_options(
            temporal_quant_share,
            list(temporal_quant_levels) or None,
            temporal_static_quant,
            temporal_codec_static,
            temporal_codec_codecs,
            (min(fusion_crf, default=0), max(fusion_crf, default=0)),
            (min(fusion_qp, default=0), max(fusion_qp, default=0)),
            temporal_codec_motion,
            prefix="data.temporal_",
        )
        if temporal_codec_static > 0.0 and not have_codecs():
            raise ConfigError(
                "data.temporal_codec_static needs PyAV with libx264/libx265 (not importable here)"
            )
        overlap = {content_of(s) for s in [*train_stills, *temporal_stills]} & {
            content_of(s) for s in heldout_stills
        }
        if overlap:
            raise ConfigError(f"train and held-out stills share content {', '.join(sorted(overlap))}")
        if spatial_sampling not in ("fresh", "fixed"):
            raise ConfigError(f"data.spatial_sampling must be fresh or fixed, got {spatial_sampling!r}")
        bad = [c for c in spatial_codecs if c not in ("x264", "x265")]
        if bad:
            raise ConfigError(f"data.spatial_codecs takes x264 and/or x265, got {', '.join(map(str, bad))}")
        if patch_policy not in ("resize", "crop"):
            raise ConfigError(f"data.patch_policy must be resize or crop, got {patch_policy!r}")
        if score_direction not in ("higher_better", "lower_better"):
            raise ConfigError(
                f"data.score_direction must be higher_better or lower_better, got {score_direction!r}"
            )
        if (mos_csv is None) != (video_root is None):
            raise ConfigError(
                "--data.mos_csv and --data.video_root go together (a CSV and the folder of its videos)"
            )
        if pea_root is not None and not Path(pea_root).is_dir():
            raise MissingFileError("PEA folder", pea_root, "expected <root>/<pea>/{positive,negative}/<item>")
        self.save_hyperparameters()
        self.stage = stage
        self.train_sets: tuple[PatchSet | DegradedPool | None, CubeSet | None] = (None, None)
        self.val_sets: tuple[PatchSet | None, CubeSet | None] = (None, None)
        self.test_sets: tuple[PatchSet | None, CubeSet | None] = (None, None)
        self.loader_names: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ geometry from the model
    def _geometry(self) -> tuple[int, int, int]:
        model = self.trainer.lightning_module if self.trainer is not None else None
        if model is None:
            return 64, 8, 64
        return model.patch, model.window, model.cube

    def _fast(self) -> bool:
        return bool(self.trainer is not None and self.trainer.fast_dev_run)

    def data_fingerprint(self) -> str:
        return "pea:" + str(self.hparams.pea_root) if self.hparams.pea_root else "synthetic"

    def _build(
        self, stills: Sequence[str], per_level: int, per_class: int, seed: int, which: str
    ) -> tuple[PatchSet | None, CubeSet | None]:
        hp = self.hparams
        patch, window, cube = self._geometry()
        spatial = temporal = None
        if self._fast():
            per_level, per_class = 4, 2
        if self.stage in ("all", "spatial", "fusion"):
            if which == "training" and hp.spatial_sampling == "fresh":
                log(
                    f"sstam: degrading the training contents ({len(stills)} stills × {len(hp.spatial_scales)} "
                    f"scales + {hp.spatial_procedural} dead-leaves, every PEA level"
                    + (f", {'/'.join(hp.spatial_codecs)} ladders" if hp.spatial_codecs else "")
                    + "); fresh crops every batch"
                )
                fast = self._fast()
                pool = DegradedPool(
                    list(stills)[:2] if fast else stills,
                    [1.0] if fast else hp.spatial_scales,
                    0 if fast else hp.spatial_procedural,
                    patch=patch,
                    visible_threshold=hp.visible_threshold,
                    seed=seed,
                    chroma_420=hp.spatial_chroma_420,
                    codecs=hp.spatial_codecs,
                    codec_crf=hp.spatial_codec_crf,
                    codec_qp=hp.spatial_codec_qp,
                )
                pool.per_epoch = per_level * (len(pool.jobs) + len(SPATIAL_PEAS))  # type: ignore[attr-defined]
                spatial = pool
            else:
                log(
                    f"sstam: building {which} patches ({per_level} per PEA level, {len(stills)} stills, "
                    f"P = {patch})"
                )
                spatial = build_patch_set(
                    stills,
                    per_level,
                    patch,
                    seed,
                    min_positive_level=hp.min_positive_level,
                    visible_threshold=hp.visible_threshold,
                )
        if self.stage in ("all", "temporal"):
            training = which == "training" and not self._fast()
            names = (
                [*stills, *(s for s in hp.temporal_stills if s not in stills)] if training else list(stills)
            )
            procedural = hp.temporal_procedural if training else 0
            augment = bool(hp.temporal_augment) and training
            quant = {
                "quant_share": hp.temporal_quant_share if training else 0.5,
                "quant_levels": (list(hp.temporal_quant_levels) or None) if training else None,
                "static_quant": hp.temporal_static_quant if training else 0.0,
            }
            if training and hp.temporal_codec_static > 0.0:
                quant.update(
                    codec_static=hp.temporal_codec_static,
                    codec_codecs=list(hp.temporal_codec_codecs),
                    codec_crf=(min(hp.fusion_crf), max(hp.fusion_crf)),
                    codec_qp=(min(hp.fusion_qp), max(hp.fusion_qp)),
                    codec_motion=hp.temporal_codec_motion,
                )
            log(
                f"sstam: building {which} cubes ({per_class} per class, {window + 1} × {cube}² frames, "
                f"{len(names)} stills"
                + (f" + {procedural} generated images" if procedural else "")
                + (", augmented views" if augment else "")
                + (
                    f", {hp.temporal_codec_static:g} of the distractors codec-encoded"
                    if "codec_static" in quant
                    else ""
                )
                + ")"
            )
            temporal = build_cube_set(
                names,
                per_class,
                window,
                cube,
                seed,
                min_positive_level=hp.temporal_min_positive_level,
                visible_threshold=hp.visible_threshold,
                procedural=procedural,
                augment=augment,
                **quant,
            )
        return spatial, temporal

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if hp.pea_root is not None:
            patch, window, cube = self._geometry()
            spatial, temporal, splits = load_pea_folder(
                hp.pea_root, patch, window, cube, hp.patch_policy, hp.content_regex, hp.min_positive_level
            )

            def part(data: Any, key: str, names: tuple[str, ...]) -> Any:
                if data is None:
                    return None
                keep = np.isin(splits[key], names)
                return data.subset(np.flatnonzero(keep)) if keep.any() else None

            self.train_sets = (part(spatial, "spatial", ("train",)), part(temporal, "temporal", ("train",)))
            held = (part(spatial, "spatial", ("val", "test")), part(temporal, "temporal", ("val", "test")))
            self.val_sets = self.test_sets = held
            return
        if stage == "fit":
            self.train_sets = self._build(
                hp.train_stills, hp.spatial_per_level, hp.temporal_per_class, hp.seed, "training"
            )
            self.val_sets = self._build(
                hp.heldout_stills,
                hp.spatial_val_per_level,
                hp.temporal_val_per_class,
                hp.seed + 1,
                "validation",
            )
        if stage == "test":
            self.test_sets = self._build(
                hp.heldout_stills, hp.spatial_val_per_level, hp.temporal_val_per_class, hp.seed + 2, "test"
            )

    # ------------------------------------------------------------------ loaders
    def _loaders(self, sets: tuple[PatchSet | None, CubeSet | None], shuffle: bool) -> dict[str, DataLoader]:
        hp = self.hparams
        generator = torch.Generator().manual_seed(hp.seed)
        loaders = {}
        spatial, temporal = sets
        if isinstance(spatial, DegradedPool):
            steps = max(1, -(-spatial.per_epoch // hp.spatial_batch_size))  # type: ignore[attr-defined]
            loaders["spatial"] = DataLoader(
                FreshPatchBatches(spatial, steps, hp.spatial_batch_size), batch_size=None, shuffle=False
            )
        elif spatial is not None and len(spatial):
            loaders["spatial"] = DataLoader(
                PatchDataset(spatial),
                batch_size=hp.spatial_batch_size,
                shuffle=shuffle,
                generator=generator if shuffle else None,
            )
        if temporal is not None and len(temporal):
            loaders["temporal"] = DataLoader(
                CubeDataset(temporal),
                batch_size=hp.temporal_batch_size,
                shuffle=shuffle,
                generator=generator if shuffle else None,
            )
        return loaders

    def train_dataloader(self) -> Any:
        from pytorch_lightning.utilities import CombinedLoader

        loaders = self._loaders(self.train_sets, shuffle=True)
        if not loaders:
            raise UserError("no training data for this stage (check --data.pea_root and --stage)")
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> Any:
        from pytorch_lightning.utilities import CombinedLoader

        loaders = self._loaders(self.val_sets, shuffle=False)
        self.loader_names["val"] = list(loaders)
        return CombinedLoader(loaders, mode="sequential")

    def test_dataloader(self) -> Any:
        from pytorch_lightning.utilities import CombinedLoader

        loaders = self._loaders(self.test_sets, shuffle=False)
        self.loader_names["test"] = list(loaders)
        return CombinedLoader(loaders, mode="sequential")

    # ------------------------------------------------------------------ fusion items
    def fusion_items(self, run_dir: Path | None) -> tuple[list[FusionItem], str, str]:
        """The items the regressor is fitted on, their label source and training-set name."""
        hp = self.hparams
        if hp.mos_csv is not None:
            size = parse_size(hp.size) if hp.size else None
            items = read_mos_csv(hp.mos_csv, hp.video_root, hp.mos_content_regex, size)
            return items, f"mos:{Path(hp.mos_csv).name}", Path(hp.mos_csv).name
        folder = Path(hp.ladder_dir) if hp.ladder_dir else (run_dir or Path(".")) / "fusion-ladder"
        stills, size, frames = list(hp.fusion_stills), hp.fusion_clip_size, hp.fusion_frames
        crfs, qps, codecs = list(hp.fusion_crf), list(hp.fusion_qp), list(hp.fusion_codecs)
        if self._fast():
            stills, size, frames, codecs, crfs = stills[:2], 64, 16, ["x264"], [crfs[0], crfs[-1]]
        log(
            f"sstam: encoding the proxy-MOS ladder ({len(stills)} pans of {size}² × {frames} frames, "
            f"{', '.join(codecs)}) into {folder}"
        )
        items = ladder_items(folder, stills, size, frames, codecs, crfs, qps, hp.fusion_preset)
        return items, "proxy:vmaf_v0.6.1", f"ladder:{'+'.join(stills)}"
