"""The small verbs: ``metrics --csv``, ``show`` and ``inspect`` through the real CLI."""

from __future__ import annotations

import numpy as np
import pytest
from lidar_robust.cli import main
from lidar_robust.metrics import SKC_TYPES
from lidar_robust.plots import PALETTE
from PIL import Image

#: per-type mIoUs of one made-up model; every level of a type gets its type's value
TYPES = {"fog": 30.0, "snow": 40.0, "global": 50.0, "local": 54.0, "32beam": 51.0, "16beam": 33.0}
CLEAN = 60.0


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("gen")
    assert main(["generate", "--scans", "1", "--azimuth", "256", "--out", str(out)]) == 0
    velodyne = out / "sequences" / "08" / "velodyne"
    return velodyne / "000000.bin", out


def _printed(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            values[parts[0]] = float(parts[1])
    return values


def test_metrics_csv_gives_the_paper_columns(tmp_path, capsys):
    rows = ["subset,miou", f"clean,{CLEAN}"]
    for kind, subsets in SKC_TYPES.items():
        rows += [f"{s},{TYPES[kind]}" for s in subsets]
    csv = tmp_path / "scores.csv"
    csv.write_text("\n".join(rows) + "\n")
    assert main(["metrics", "--csv", str(csv)]) == 0
    printed = _printed(capsys.readouterr().out)
    # RmIoU = mean of the 6 per-type mIoUs; mR = mean of per-type mIoU / clean (in %)
    assert printed["skc_rmiou"] == pytest.approx(sum(TYPES.values()) / 6, abs=0.005)
    assert printed["skc_mr"] == pytest.approx(100 * sum(TYPES.values()) / 6 / CLEAN, abs=0.005)
    assert printed["skc_fog_r"] == pytest.approx(50.0, abs=0.005)


def test_metrics_csv_bad_row_is_one_line(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("subset,miou\nclean,sixty\n")
    assert main(["metrics", "--csv", str(csv)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lidar-robust: error: ") and "bad.csv line 2" in err[-1]


def test_show_draws_clean_and_corrupted_bev(generated, tmp_path):
    scan, _root = generated
    out = tmp_path / "show"
    assert main(["show", str(scan), "--corruption", "dense_16beam", "--out", str(out)]) == 0
    png = next(out.rglob("bev_dense_16beam.png"))
    image = np.asarray(Image.open(png).convert("RGB"))
    assert image.shape == (600 + 24, 2 * 600 + 10, 3)
    left, right = image[24:, :600], image[24:, 610:]
    drawn_left = (left != 255).any(-1).sum()
    drawn_right = (right != 255).any(-1).sum()
    assert 0 < drawn_right < 0.6 * drawn_left  # 16 of 64 beams kept
    # coloured by label: the road colour (class 9) and at least one other class colour appear
    colours = {tuple(c) for c in left.reshape(-1, 3)}
    assert tuple(PALETTE[9]) in colours
    assert len(colours & {tuple(c) for c in PALETTE[1:]}) >= 3


def test_show_unknown_corruption_is_one_line(generated, tmp_path, capsys):
    scan, _root = generated
    out = tmp_path / "show"
    assert main(["show", str(scan), "--corruption", "hail_heavy", "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("lidar-robust: error: ") and "hail_heavy" in err[-1]
    assert not list(out.rglob("*.png"))


def test_inspect_recovers_64_rings(generated, capsys):
    scan, _root = generated
    assert main(["inspect", str(scan)]) == 0
    text = capsys.readouterr().out
    assert "rings (file order): 64," in text and "strictly decreasing: True" in text
    assert "road" in text
