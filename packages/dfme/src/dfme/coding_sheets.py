"""CASME II and SAMM coding sheets (spec §2.2, optional loaders), read with ``openpyxl``.

CASME II: columns ``Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion``;
frames in ``sub{subject:02d}/{Filename}/``. SAMM: about 13 text rows above the header row; columns ``Subject,
Filename, Onset Frame, Apex Frame, Offset Frame, Action Units, Estimated Emotion``; frames in
``{subject}/{Filename}/`` (integer subjects written with three digits, e.g. ``006``, an unverified convention).
Both are 200 fps. Frame numbers in the sheets are file-name numbers (resolved through the trailing integer of the
frame files). Emotions are mapped onto the 7 DFME classes; samples labelled ``repression``/``others`` are left
out (counted in the log).

Both sheets contain known errors (a missing apex given as text, a wrong offset, AU strings with "or"). By default
an invalid row is a one-line error; ``meb_fixes=True`` re-applies the corrections of the MEB toolkit
(tvaranka/meb, ``meb/datasets/datasets.py``; values re-typed from that file, indices are 0-based data rows below
the header): see :data:`MEB_FIXES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dfme.dataset import AnnotationError, Sample, check_sample
from dfme.labels import EMOTIONS, emotion_id, parse_aus
from dfme.readers import FolderReader, FrameError
from paperlab_core.errors import MissingFileError
from paperlab_core.logging import log

COLUMNS = {
    "casme2": {"subject": "Subject", "filename": "Filename", "onset": "OnsetFrame", "apex": "ApexFrame",
               "offset": "OffsetFrame", "aus": "Action Units", "emotion": "Estimated Emotion"},
    "samm": {"subject": "Subject", "filename": "Filename", "onset": "Onset Frame", "apex": "Apex Frame",
             "offset": "Offset Frame", "aus": "Action Units", "emotion": "Estimated Emotion"},
}  # fmt: skip
SHEET_NAMES = {"casme2": "CASME2-coding", "samm": "SAMM_Micro_FACS_Codes"}

#: MEB's corrections: {layout: {column: {data row: value}}}
MEB_FIXES: dict[str, dict[str, dict[int, Any]]] = {
    "casme2": {
        "offset": {60: 91},
        "apex": dict(zip(
            [29, 35, 43, 45, 51, 53, 60, 117, 118, 126, 136, 147, 155, 168, 170, 177, 202, 203, 234, 237, 238],
            [279, 68, 77, 81, 166, 100, 78, 187, 89, 80, 88, 134, 231, 53, 329, 111, 91, 103, 98, 153, 98],
            strict=True,
        )),
    },
    "samm": {
        "offset": {56: 5739},
        "apex": {125: 1105, 132: 4945, 133: 5130},
        "aus": {15: "R12 + R15", 18: "R12 + R15", 41: "L14", 64: "R14", 154: "R14A"},
    },
}  # fmt: skip


def _find_sheet(root: Path, layout: str) -> Path:
    candidates = sorted(p for p in root.glob("*.xls*") if not p.name.startswith("~$"))
    if not candidates:
        raise MissingFileError(
            f"{layout} coding sheet (.xlsx)", root / f"{SHEET_NAMES[layout]}.xlsx",
            "put the dataset's coding sheet in the root next to the subject folders",
        )  # fmt: skip
    return candidates[0]


def read_sheet(path: Path, layout: str) -> list[dict[str, Any]]:
    """Data rows below the header row (the first row holding ``Subject`` and ``Filename``), as dicts keyed by the
    package's column names; row order and blank rows are kept (MEB's indices count them)."""
    import openpyxl

    columns = COLUMNS[layout]
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    for index, row in enumerate(rows):
        names = [str(c).strip() if c is not None else "" for c in row]
        if columns["subject"] in names and columns["filename"] in names:
            where = {key: names.index(name) for key, name in columns.items() if name in names}
            missing = [name for key, name in columns.items() if key not in where]
            if missing:
                raise AnnotationError(f"{path}: header row {index + 1} lacks column(s) {', '.join(missing)}")
            return [
                {key: (r[i] if i < len(r) else None) for key, i in where.items()} for r in rows[index + 1 :]
            ]
    raise AnnotationError(f"{path}: no header row with {columns['subject']!r} and {columns['filename']!r}")


def _folder(root: Path, layout: str, subject: Any, filename: str) -> Path:
    if layout == "casme2":
        return root / f"sub{int(subject):02d}" / filename
    name = f"{int(subject):03d}" if isinstance(subject, (int, float)) else str(subject).strip()
    return root / name / filename


def _number(value: Any, column: str, where: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnnotationError(
            f"{where}: {column} {value!r} is not a frame number (try --meb-fixes)"
        ) from None
    return int(number)


def load_coding_sheet(root: str | Path, layout: str, meb_fixes: bool = False, **_: Any) -> list[Sample]:
    """Validated samples of a CASME II (``casme2``) or SAMM (``samm``) root."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(
            f"{layout} root", root, "expected a folder with the coding sheet and subject folders"
        )
    path = _find_sheet(root, layout)
    rows = read_sheet(path, layout)
    if meb_fixes:
        for column, fixes in MEB_FIXES[layout].items():
            for index, value in fixes.items():
                if index < len(rows):
                    rows[index][column] = value
    samples: list[Sample] = []
    skipped: dict[str, int] = {}
    for index, row in enumerate(rows):
        if all(v is None or str(v).strip() == "" for v in row.values()):
            continue
        filename = str(row["filename"]).strip()
        where = f"{path.name} data row {index}, sample {filename!r}"
        try:
            label = emotion_id(str(row["emotion"]))
        except ValueError:
            name = str(row["emotion"]).strip().lower()
            skipped[name] = skipped.get(name, 0) + 1
            continue
        onset, apex, offset = (_number(row[c], c, where) for c in ("onset", "apex", "offset"))
        try:
            au = parse_aus(row["aus"])
        except ValueError as err:
            raise AnnotationError(f"{where}: {err} (try --meb-fixes)") from None
        folder = _folder(root, layout, row["subject"], filename)
        try:
            reader = FolderReader(folder, filename)
        except FileNotFoundError:
            raise AnnotationError(f"{where}: frame folder {folder} does not exist") from None
        except FrameError as err:
            raise AnnotationError(f"{where}: {err}") from None
        positions = check_sample(where, filename, onset, apex, offset, reader.n_frames, reader.first_index)
        subject = f"{layout}-{row['subject']}"
        samples.append(
            Sample(
                f"{layout}-{row['subject']}-{filename}",
                subject,
                layout,
                200.0,
                *positions,
                EMOTIONS[label],
                label,
                au,
                reader.n_frames,
                folder,
                "frames",
                reader.first_index,
            )
        )
    if skipped:
        log(
            f"dfme: {layout}: left out {sum(skipped.values())} samples outside the 7 DFME classes ({skipped})"
        )
    if not samples:
        raise AnnotationError(f"{path}: no sample with one of the 7 DFME emotions")
    return samples
