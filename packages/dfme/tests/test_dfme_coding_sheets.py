"""CASME II / SAMM coding sheets (spec §2.2): header detection, folder layout, MEB corrections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pytest
from dfme.coding_sheets import load_coding_sheet
from dfme.dataset import AnnotationError
from dfme.readers import write_frames


def frames(folder: Path, first: int, count: int = 10, prefix: str = "reg_img") -> None:
    write_frames(np.full((count, 8, 8, 3), 100, np.uint8), folder, ".png")
    for path in sorted(folder.iterdir(), reverse=True):
        path.rename(folder / f"{prefix}{int(path.stem) + first}.png")


def samm_root(tmp_path: Path, rows: int = 16) -> Path:
    root = tmp_path / "samm"
    book = openpyxl.Workbook()
    sheet = book.active
    for i in range(13):
        sheet.append([f"notes line {i}"])
    sheet.append(["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration",
                  "Type", "Action Units", "Notes", "Estimated Emotion"])  # fmt: skip
    emotions = ["Happiness", "Anger", "Other", "Contempt"]
    for i in range(rows):
        name = f"006_1_{i}"
        frames(root / "006" / name, 5000)
        aus = "R12 or R15" if i == 15 else "12"
        sheet.append([6, name, 1, 5001, 5004, 5008, 8, "Micro", aus, "", emotions[i % 4]])
    root.mkdir(exist_ok=True)
    book.save(root / "SAMM_Micro_FACS_Codes_v2.xlsx")
    return root


def test_samm_header_below_text_rows_and_meb_au_fix(tmp_path):
    root = samm_root(tmp_path)
    with pytest.raises(AnnotationError, match=r"data row 15, sample '006_1_15': AU token 'or'.*--meb-fixes"):
        load_coding_sheet(root, "samm")
    samples = load_coding_sheet(root, "samm", meb_fixes=True)
    assert len(samples) == 12  # 'Other' rows are outside the 7 DFME classes
    fixed = next(s for s in samples if s.sample_id.endswith("006_1_15"))
    assert fixed.au.aus == (12, 15) and fixed.au.laterality == {12: "R", 15: "R"}
    first = samples[0]
    assert (first.first_index, first.onset, first.apex, first.offset, first.n_frames) == (5000, 1, 4, 8, 10)
    assert first.emotion == "happiness" and first.fps == 200 and first.subject_id == "samm-6"


def test_casme2_layout_and_text_apex(tmp_path):
    root = tmp_path / "casme2"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
                  "Estimated Emotion"])  # fmt: skip
    frames(root / "sub01" / "EP02_01f", 46, prefix="img")
    sheet.append([1, "EP02_01f", None, 46, 50, 55, None, "12", "happiness"])
    frames(root / "sub02" / "EP03_02", 10, prefix="img")
    sheet.append([2, "EP03_02", None, 10, "/", 19, None, "4+7", "disgust"])
    sheet.append([2, "EP03_03", None, 10, 12, 19, None, "14", "repression"])
    book.save(root / "CASME2-coding-20140508.xlsx")
    with pytest.raises(AnnotationError, match="sample 'EP03_02': apex '/' is not a frame number"):
        load_coding_sheet(root, "casme2")
    book = openpyxl.load_workbook(root / "CASME2-coding-20140508.xlsx")
    book.active["E3"] = 14
    book.save(root / "CASME2-coding-20140508.xlsx")
    samples = load_coding_sheet(root, "casme2")
    assert [s.emotion for s in samples] == ["happiness", "disgust"]
    assert (samples[0].onset, samples[0].apex, samples[0].offset) == (0, 4, 9)
    assert samples[0].source == root / "sub01" / "EP02_01f"


def test_missing_sheet_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="coding sheet"):
        load_coding_sheet(tmp_path / "empty", "casme2")
