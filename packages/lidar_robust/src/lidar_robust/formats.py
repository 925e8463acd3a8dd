"""SemanticKITTI file formats (spec §2.1): ``.bin`` scans, ``.label`` files and the learning map.

``velodyne/<frame>.bin`` is float32 (N, 4) = x, y, z, remission; ``labels/<frame>.label`` is uint32 (N,) with the
semantic raw id in the low 16 bits and the instance id in the high 16 bits. Writers are bit-exact inverses of the
readers. Every problem a user can cause raises :class:`paperlab_core.errors.UserError` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperlab_core.errors import MissingFileError, UserError

#: learning id → class name (0 = ignore)
CLASS_NAMES: tuple[str, ...] = (
    "unlabeled", "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist",
    "motorcyclist", "road", "parking", "sidewalk", "other-ground", "building", "fence", "vegetation",
    "trunk", "terrain", "pole", "traffic-sign",
)  # fmt: skip
NUM_CLASSES = 20  # including the ignore class 0

#: raw SemanticKITTI id → learning id (the standard ``semantic-kitti.yaml`` mapping, written out here)
LEARNING_MAP: dict[int, int] = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8, 40: 9, 44: 10,
    48: 11, 49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17, 80: 18, 81: 19, 99: 0,
    252: 1, 253: 7, 254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5,
}  # fmt: skip
#: Robo3D's corruption labels (fog 21, snow 22, crosstalk 23): not in ``semantic-kitti.yaml``, mapped to ignore
EXTENDED_MAP: dict[int, int] = {21: 0, 22: 0, 23: 0}
#: learning id → a representative raw id (the inverse used when writing predictions)
LEARNING_MAP_INV: dict[int, int] = {
    0: 0, 1: 10, 2: 11, 3: 15, 4: 18, 5: 20, 6: 30, 7: 31, 8: 32, 9: 40, 10: 44, 11: 48, 12: 49, 13: 50,
    14: 51, 15: 70, 16: 71, 17: 72, 18: 80, 19: 81,
}  # fmt: skip

_LUT = np.zeros(1 << 16, dtype=np.int64)
_KNOWN = np.zeros(1 << 16, dtype=bool)
for _raw, _learn in {**LEARNING_MAP, **EXTENDED_MAP}.items():
    _LUT[_raw] = _learn
    _KNOWN[_raw] = True


def pack_labels(semantic: np.ndarray, instance: np.ndarray | None = None) -> np.ndarray:
    """``sem | inst << 16`` as uint32."""
    semantic = np.asarray(semantic, dtype=np.uint32)
    if instance is None:
        return semantic.copy()
    return semantic | (np.asarray(instance, dtype=np.uint32) << np.uint32(16))


def unpack_labels(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(semantic raw id ``& 0xFFFF``, instance id ``>> 16``)."""
    label = np.asarray(label, dtype=np.uint32)
    return label & np.uint32(0xFFFF), label >> np.uint32(16)


def learning_labels(raw: np.ndarray, strict: bool = False) -> np.ndarray:
    """Raw ids (instance bits allowed) → learning ids 0..19; unknown ids → 0 (``strict=True`` raises)."""
    semantic = np.asarray(raw, dtype=np.uint32) & np.uint32(0xFFFF)
    if strict:
        unknown = np.unique(semantic[~_KNOWN[semantic]])
        if unknown.size:
            raise UserError(
                f"unknown raw label ids {unknown.tolist()} (expected keys of semantic-kitti.yaml)"
            )
    return _LUT[semantic]


def count_unknown(raw: np.ndarray) -> int:
    """How many labels carry a raw id outside the learning map (they are mapped to 0)."""
    return int((~_KNOWN[np.asarray(raw, dtype=np.uint32) & np.uint32(0xFFFF)]).sum())


def read_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """float32 (N, 4) from a ``.bin`` scan; a size that is not a multiple of 16 bytes is an error."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("scan", path, "a SemanticKITTI velodyne/<frame>.bin file")
    size = path.stat().st_size
    if size % 16:
        raise UserError(
            f"scan {path} has {size} bytes, not a multiple of 16 (expected float32 x, y, z, remission)"
        )
    return np.fromfile(path, dtype="<f4").reshape(-1, 4)


def read_label(path: str | os.PathLike[str], num_points: int | None = None) -> np.ndarray:
    """uint32 (N,) from a ``.label`` file; checks the length against ``num_points`` when given."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("label file", path, "a SemanticKITTI labels/<frame>.label file")
    size = path.stat().st_size
    if size % 4:
        raise UserError(f"label file {path} has {size} bytes, not a multiple of 4 (expected uint32 labels)")
    label = np.fromfile(path, dtype="<u4")
    if num_points is not None and label.shape[0] != num_points:
        raise UserError(
            f"label file {path} has {label.shape[0]} labels but its scan has {num_points} points (expected equal)"
        )
    return label


def write_bin(path: str | os.PathLike[str], points: np.ndarray) -> None:
    """Write float32 (N, 4) little-endian (bit-exact inverse of :func:`read_bin`)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 4:
        raise ValueError(f"points must be (N, 4), got {points.shape}")
    Path(path).write_bytes(np.ascontiguousarray(points, dtype="<f4").tobytes())


def write_label(path: str | os.PathLike[str], label: np.ndarray) -> None:
    """Write uint32 (N,) little-endian (bit-exact inverse of :func:`read_label`)."""
    Path(path).write_bytes(np.ascontiguousarray(label, dtype="<u4").tobytes())


@dataclass
class Scan:
    """One scan: points (N, 4) float32, raw labels (N,) uint32 (or None) and optional ring ids (N,) int64."""

    points: np.ndarray
    labels: np.ndarray | None = None
    ring: np.ndarray | None = None
    name: str = ""

    def __len__(self) -> int:
        return int(self.points.shape[0])

    @property
    def learning(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError(f"scan {self.name or '?'} has no labels")
        return learning_labels(self.labels)


def read_scan(bin_path: str | os.PathLike[str], label_path: str | os.PathLike[str] | None = None) -> Scan:
    """A scan and (when given or found next to it in ``../labels/``) its labels."""
    bin_path = Path(bin_path)
    points = read_bin(bin_path)
    if label_path is None:
        guess = bin_path.parent.parent / "labels" / (bin_path.stem + ".label")
        label_path = guess if guess.is_file() else None
    labels = read_label(label_path, len(points)) if label_path is not None else None
    return Scan(points, labels, name=bin_path.stem)


def sequence_frames(root: str | os.PathLike[str], sequence: str) -> list[tuple[Path, Path | None]]:
    """(scan, label-or-None) pairs of ``<root>/sequences/<seq>`` in frame order; a missing sequence is an error."""
    folder = Path(root) / "sequences" / sequence / "velodyne"
    if not folder.is_dir():
        raise MissingFileError(
            "sequence folder", folder, f"a SemanticKITTI root holds sequences/{sequence}/velodyne/*.bin"
        )
    scans = sorted(folder.glob("*.bin"))
    if not scans:
        raise UserError(f"no .bin scans in {folder} (expected <frame>.bin files)")
    out = []
    for scan in scans:
        label = folder.parent / "labels" / (scan.stem + ".label")
        out.append((scan, label if label.is_file() else None))
    return out
