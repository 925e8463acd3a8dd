"""The DFME loader (spec §2.2, §6.8): every validation rule is one line naming the sample; layouts agree."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from dfme.dataset import AnnotationError, DFMEDataset, make_reader
from dfme.labels import parse_aus

from paperlab_core.errors import MissingFileError

HEADER = ["sample_id", "subject_id", "part", "fps", "onset", "apex", "offset", "emotion", "aus"]


def clip(n: int = 12) -> np.ndarray:
    """A natural-image clip (the astronaut's face, brightening by 3 grey levels per frame)."""
    import cv2
    from skimage import data

    base = cv2.resize(data.astronaut()[60:200, 150:330], (32, 24), interpolation=cv2.INTER_AREA)
    return np.clip(base[None].astype(int) * 0.8 + np.arange(n)[:, None, None, None] * 3, 0, 255).astype(
        np.uint8
    )


def write_root(root: Path, rows: list[list], layouts: dict[str, str]) -> Path:
    from dfme.readers import write_frames, write_video

    root.mkdir(parents=True, exist_ok=True)
    with open(root / "annotations.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    for sample, layout in layouts.items():
        frames = clip()
        if layout == "npy":
            (root / "frames").mkdir(exist_ok=True)
            np.save(root / "frames" / f"{sample}.npy", frames)
        elif layout == "png":
            write_frames(frames, root / "frames" / sample, ".png")
        else:
            (root / "videos").mkdir(exist_ok=True)
            write_video(frames, root / "videos" / f"{sample}.mp4")
    return root


GOOD = ["s1", "subA", "C", 200, 2, 5, 9, "happy", "6+L12B"]


def test_layouts_load_identical_arrays(tmp_path):
    rows = [["a", "subA", "C", 200, 2, 5, 9, "happiness", "6+12"], ["b", "subB", "A", 500, 0, 3, 11, "Sad", "1+15"],
            ["c", "subC", "B", 300, 1, 2, 3, "surprise", ""]]  # fmt: skip
    root = write_root(tmp_path / "root", rows, {"a": "npy", "b": "png", "c": "mp4"})
    dataset = DFMEDataset(root)
    assert [s.kind for s in dataset.samples] == ["npy", "frames", "video"]
    assert dataset.labels.tolist() == [0, 5, 6]
    expected = clip()
    np.testing.assert_array_equal(make_reader(dataset.samples[0])(np.arange(12)), expected)
    np.testing.assert_array_equal(make_reader(dataset.samples[1])(np.arange(12)), expected)
    video = make_reader(dataset.samples[2])(np.arange(12)).astype(int)
    assert np.abs(video - expected).mean() < 2.0  # H.264 at CRF 10, yuv444: near-lossless
    summary = dataset.summary()
    assert summary["per_part"] == {"A": 1, "B": 1, "C": 1} and summary["au_vocabulary"] == [1, 6, 12, 15]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({4: 6, 5: 5}, "onset 6 > apex 5"),
        ({5: 10, 6: 9}, "apex 10 > offset 9"),
        ({6: 12}, "frames 2..12 lie outside the clip's frames 0..11"),
        ({7: "joyful"}, "unknown emotion 'joyful'"),
        ({3: 500}, "fps 500 does not match part C"),
        ({2: "D"}, "part 'D' (expected A, B or C)"),
        ({1: ""}, "empty subject_id"),
        ({8: "12X"}, "AU token '12X' is not an action unit"),
        ({4: "2.5"}, "onset '2.5' is not an integer frame number"),
    ],
)
def test_each_rule_is_one_line_naming_the_sample(tmp_path, change, message):
    row = [change.get(i, v) for i, v in enumerate(GOOD)]
    root = write_root(tmp_path / "root", [row], {"s1": "npy"})
    with pytest.raises(AnnotationError) as info:
        DFMEDataset(root)
    text = str(info.value)
    assert message in text and "sample 's1'" in text and "\n" not in text


def test_duplicate_ids_missing_frames_and_broken_frames(tmp_path):
    root = write_root(tmp_path / "dup", [GOOD, GOOD], {"s1": "npy"})
    with pytest.raises(AnnotationError, match="sample 's1': duplicate sample_id"):
        DFMEDataset(root)
    root = write_root(tmp_path / "missing", [GOOD], {})
    with pytest.raises(AnnotationError, match="sample 's1': no frames"):
        DFMEDataset(root)
    root = write_root(tmp_path / "gap", [GOOD], {"s1": "png"})
    (root / "frames" / "s1" / "000004.png").unlink()
    with pytest.raises(AnnotationError, match="not contiguous"):
        DFMEDataset(root)
    root = write_root(tmp_path / "broken", [GOOD], {"s1": "png"})
    (root / "frames" / "s1" / "000003.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="cannot be decoded"):
        make_reader(DFMEDataset(root).samples[0])(np.arange(12))
    root = write_root(tmp_path / "badnpy", [GOOD], {})
    (root / "frames").mkdir()
    np.save(root / "frames" / "s1.npy", np.zeros((12, 4, 4, 3), np.float32))
    with pytest.raises(AnnotationError, match="expected uint8"):
        DFMEDataset(root)


def test_frame_numbers_come_from_file_names(tmp_path):
    root = write_root(
        tmp_path / "root", [["s1", "subA", "C", 200, 102, 105, 109, "fear", "4"]], {"s1": "png"}
    )
    folder = root / "frames" / "s1"
    for path in sorted(folder.iterdir(), reverse=True):  # img100.png … img111.png
        path.rename(folder / f"img{int(path.stem) + 100}.png")
    sample = DFMEDataset(root).samples[0]
    assert (sample.first_index, sample.onset, sample.apex, sample.offset) == (100, 2, 5, 9)


def test_missing_root_and_annotations(tmp_path):
    with pytest.raises(MissingFileError, match="DFME root .* does not exist"):
        DFMEDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="annotations.csv does not exist .*licence"):
        DFMEDataset(tmp_path / "empty")


def test_au_parsing():
    code = parse_aus("AU4, R14A+L12B+1")
    assert code.aus == (1, 4, 12, 14)
    assert code.laterality == {14: "R", 12: "L"} and code.intensity == {14: "A", 12: "B"}
    assert parse_aus(None).aus == () and parse_aus("").aus == ()
    with pytest.raises(ValueError, match="'or'"):
        parse_aus("4 or 7")
