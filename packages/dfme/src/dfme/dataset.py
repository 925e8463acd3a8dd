"""The DFME on-disk format (spec §2.2) and its validating loader.

```
<root>/annotations.csv   sample_id, subject_id, part ∈ {A,B,C}, fps ∈ {500,300,200}, onset, apex, offset
                         (frame indices, inclusive), emotion, aus (e.g. "1+2+4", "L12", "4B")
<root>/frames/<sample_id>/000000.jpg …   (or .png/.bmp; frame index = trailing integer of the file name)
<root>/frames/<sample_id>.npy            (or one uint8 array (T, H, W, 3) per sample)
<root>/videos/<sample_id>.mp4            (or .avi; decoded with PyAV)
```

Every rule is checked on load and a violation is one line naming the row, the sample and the rule.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dfme.labels import EMOTIONS, AUCode, emotion_id, parse_aus
from dfme.readers import VIDEO_SUFFIXES, FolderReader, FrameError, NpyReader, VideoReader
from paperlab_core.errors import MissingFileError, UserError

REQUIRED_COLUMNS = ("sample_id", "subject_id", "part", "fps", "onset", "apex", "offset", "emotion")
PART_FPS = {"A": 500, "B": 300, "C": 200}
LAYOUTS = ("dfme", "casme2", "samm")


class AnnotationError(UserError):
    """An annotation row that breaks a rule of the format."""


@dataclass(frozen=True)
class Sample:
    """One validated sample; ``onset``/``apex``/``offset`` are 0-based positions in the clip (the annotation's
    frame numbers minus ``first_index``)."""

    sample_id: str
    subject_id: str
    part: str
    fps: float
    onset: int
    apex: int
    offset: int
    emotion: str
    label: int
    au: AUCode
    n_frames: int
    source: Path
    kind: str  # frames | npy | video
    first_index: int = 0
    extra: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {
            "sample_id": self.sample_id, "subject_id": self.subject_id, "part": self.part, "fps": self.fps,
            "onset": self.onset, "apex": self.apex, "offset": self.offset, "emotion": self.emotion,
            "aus": "+".join(map(str, self.au.aus)), "n_frames": self.n_frames,
        }  # fmt: skip


def make_reader(sample: Sample) -> Callable[[np.ndarray], np.ndarray]:
    if sample.kind == "frames":
        return FolderReader(sample.source, sample.sample_id)
    if sample.kind == "npy":
        return NpyReader(sample.source, sample.sample_id)
    return VideoReader(sample.source, sample.sample_id)


def locate_frames(root: Path, sample_id: str) -> tuple[Path, str] | None:
    """Where the frames of ``sample_id`` are: a frame folder, an .npy array or a video (in that order)."""
    folder = root / "frames" / sample_id
    if folder.is_dir():
        return folder, "frames"
    array = root / "frames" / f"{sample_id}.npy"
    if array.is_file():
        return array, "npy"
    for suffix in VIDEO_SUFFIXES:
        video = root / "videos" / f"{sample_id}{suffix}"
        if video.is_file():
            return video, "video"
    return None


def _int(value: str, column: str, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(f"{where}: {column} {value!r} is not a frame number") from None
    if number != int(number):
        raise AnnotationError(f"{where}: {column} {value!r} is not an integer frame number")
    return int(number)


def check_sample(
    where: str, sample_id: str, onset: int, apex: int, offset: int, n_frames: int, first_index: int = 0
) -> tuple[int, int, int]:
    """Positions of onset/apex/offset after the rule onset ≤ apex ≤ offset < n_frames (in file-name numbers:
    first ≤ onset ≤ apex ≤ offset ≤ last)."""
    last = first_index + n_frames - 1
    if onset > apex:
        raise AnnotationError(f"{where}: onset {onset} > apex {apex} (expected onset ≤ apex ≤ offset)")
    if apex > offset:
        raise AnnotationError(f"{where}: apex {apex} > offset {offset} (expected onset ≤ apex ≤ offset)")
    if onset < first_index or offset > last:
        raise AnnotationError(
            f"{where}: frames {onset}..{offset} lie outside the clip's frames {first_index}..{last} "
            f"({n_frames} frames; expected onset ≤ apex ≤ offset < n_frames)"
        )
    return onset - first_index, apex - first_index, offset - first_index


def read_annotations(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise MissingFileError(
            "annotations file", path,
            f"a DFME root holds annotations.csv with columns {', '.join(REQUIRED_COLUMNS)}, aus "
            "(DFME data are licence-restricted: obtain them from the authors and place them there)",
        )  # fmt: skip
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise AnnotationError(
                f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(REQUIRED_COLUMNS)}, aus)"
            )
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]


class DFMEDataset:
    """The validated samples of a DFME root (``validate_frames=False`` skips opening the frames)."""

    def __init__(self, root: str | Path, validate_frames: bool = True) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise MissingFileError(
                "DFME root", self.root, "expected a folder with annotations.csv and frames/ or videos/"
            )
        path = self.root / "annotations.csv"
        rows = read_annotations(path)
        self.samples: list[Sample] = []
        seen: dict[str, int] = {}
        for number, row in enumerate(rows, start=2):
            self.samples.append(self._sample(row, f"{path.name} line {number}", seen, validate_frames))
        if not self.samples:
            raise AnnotationError(f"{path}: no samples")

    def _sample(self, row: dict[str, str], line: str, seen: dict[str, int], validate_frames: bool) -> Sample:
        sample_id = row["sample_id"]
        if not sample_id:
            raise AnnotationError(f"{line}: empty sample_id")
        where = f"{line}, sample {sample_id!r}"
        if sample_id in seen:
            raise AnnotationError(f"{where}: duplicate sample_id (first on line {seen[sample_id]})")
        seen[sample_id] = int(line.rsplit(" ", 1)[1])
        subject = row["subject_id"]
        if not subject:
            raise AnnotationError(f"{where}: empty subject_id (needed for subject-independent splits)")
        part = row["part"].upper()
        if part not in PART_FPS:
            raise AnnotationError(f"{where}: part {row['part']!r} (expected A, B or C)")
        try:
            fps = float(row["fps"])
        except ValueError:
            raise AnnotationError(f"{where}: fps {row['fps']!r} is not a number") from None
        if fps != PART_FPS[part]:
            raise AnnotationError(
                f"{where}: fps {row['fps']} does not match part {part} (expected {PART_FPS[part]})"
            )
        onset, apex, offset = (_int(row[c], c, where) for c in ("onset", "apex", "offset"))
        try:
            label = emotion_id(row["emotion"])
        except ValueError as err:
            raise AnnotationError(f"{where}: {err}") from None
        try:
            au = parse_aus(row.get("aus", ""))
        except ValueError as err:
            raise AnnotationError(f"{where}: {err}") from None
        found = locate_frames(self.root, sample_id)
        if found is None:
            raise AnnotationError(
                f"{where}: no frames (expected frames/{sample_id}/, frames/{sample_id}.npy or videos/{sample_id}.mp4)"
            )
        source, kind = found
        n_frames, first = offset + 1, 0
        if validate_frames:
            try:
                reader = make_reader(
                    Sample(sample_id, subject, part, fps, 0, 0, 0, "", 0, au, 0, source, kind)
                )
                n_frames, first = reader.n_frames, reader.first_index
            except FrameError as err:
                raise AnnotationError(f"{line}: {err}") from None
        onset, apex, offset = check_sample(where, sample_id, onset, apex, offset, n_frames, first)
        return Sample(
            sample_id, subject, part, fps, onset, apex, offset, EMOTIONS[label], label, au, n_frames, source, kind,
            first,
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], np.int64)

    @property
    def subjects(self) -> list[str]:
        return [s.subject_id for s in self.samples]

    def au_vocabulary(self) -> tuple[int, ...]:
        return tuple(sorted({a for s in self.samples for a in s.au.aus}))

    def summary(self) -> dict:
        """Counts per part, class and subject, and the AU vocabulary (for ``dfme validate``)."""
        return summarize_samples(self.samples)


def summarize_samples(samples: Sequence[Sample]) -> dict:
    from collections import Counter

    return {
        "samples": len(samples),
        "subjects": len({s.subject_id for s in samples}),
        "per_part": dict(sorted(Counter(s.part for s in samples).items())),
        "per_class": {e: sum(s.emotion == e for s in samples) for e in EMOTIONS},
        "au_vocabulary": sorted({a for s in samples for a in s.au.aus}),
        "frames": {
            "min": min(s.n_frames for s in samples),
            "max": max(s.n_frames for s in samples),
            "mean": float(np.mean([s.n_frames for s in samples])),
        },
    }
