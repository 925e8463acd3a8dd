"""Package verbs on fixtures (spec §6.14, §6.16): synth → PEA-folder loader, ladder, fr, fit-fusion, bench."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sstam.data import load_pea_folder, read_mos_csv


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from sstam.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_synth_writes_the_pea_folder_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pea"
    code, _, err = _run(
        capsys,
        "synth",
        "--out",
        str(out),
        "--peas",
        "blurring,flickering",
        "--n-per-level",
        "2",
        "--patch",
        "32",
    )
    assert code == 0, err
    rows = list(csv.DictReader((out / "meta.csv").open()))
    assert {r["pea"] for r in rows} == {"blurring", "flickering"}
    assert all((out / r["path"]).is_file() for r in rows)
    assert {r["split"] for r in rows} == {"train", "test"}
    spatial, temporal, splits = load_pea_folder(out, patch=32, frames=8, cube=32)
    assert spatial.patches.shape[1:] == (32, 32, 3) and temporal.cubes.shape[1:] == (9, 32, 32, 3)
    # labelled for its own PEA only; level 1 of the severity column is ignored
    assert np.all(spatial.labels[:, 1:] == -1)
    assert set(np.unique(spatial.labels[:, 0])) <= {-1.0, 0.0, 1.0} and (spatial.labels[:, 0] == 1).any()
    assert set(splits["spatial"]) == {"train", "test"}


def test_ladder_fr_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ladder"
    code, _, err = _run(
        capsys,
        "ladder",
        "still:astronaut",
        "--out",
        str(out),
        "--codec",
        "x264,x265",
        "--crf",
        "20,51",
        "--qp",
        "22,51",
        "--frames",
        "8",
        "--pan-size",
        "64",
    )
    assert code == 0, err
    rows = list(csv.DictReader((out / "ladder.csv").open()))
    assert [r["filename"] for r in rows] == [f"astronaut_x264_crf{q}.mp4" for q in (20, 51)] + [
        f"astronaut_x265_qp{q}.mp4" for q in (22, 51)
    ]
    vmaf = [float(r["vmaf"]) for r in rows]
    assert vmaf[0] > vmaf[1] and vmaf[2] > vmaf[3] and rows[0]["mos"] == rows[0]["vmaf"]
    assert float(rows[0]["psnr"]) > float(rows[1]["psnr"]) and float(rows[0]["ssim"]) > float(rows[1]["ssim"])
    code, stdout, err = _run(
        capsys, "fr", str(out / "astronaut_ref.y4m"), str(out / "astronaut_x264_crf51.mp4"), "--json"
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert result["vmaf"] == pytest.approx(vmaf[1], abs=1e-6) and len(result["per_frame"]["psnr"]) == 8
    from sstam.video_io import read_frames, write_y4m

    frames, _ = read_frames(out / "astronaut_ref.y4m")
    write_y4m(tmp_path / "short.y4m", frames[:5])
    code, _, err = _run(capsys, "fr", str(out / "astronaut_ref.y4m"), str(tmp_path / "short.y4m"))
    assert code == 1 and "8 frames" in err and "5 frames" in err


@pytest.fixture
def tiny_mos_database(tmp_path: Path) -> tuple[Path, Path]:
    """3 contents × 4 CRFs of 16-frame 64×64 clips as raw .yuv, with a headerless DMOS CSV (higher = worse)."""
    from sstam.codec import encode
    from sstam.stills import load_still
    from sstam.synth import pan_clip
    from sstam.video_io import read_frames, rgb_to_yuv420p, write_raw_yuv

    videos = tmp_path / "videos"
    lines = []
    for content in ("coffee", "rocket", "chelsea"):
        planes = rgb_to_yuv420p(pan_clip(load_still(content), 64, 16))
        for crf in (20, 32, 42, 51):
            mp4 = encode(planes, tmp_path / "mp4" / f"{content}{crf}.mp4", "x264", crf=crf)
            decoded, _ = read_frames(mp4)
            name = f"{content}_crf{crf}_64x64.yuv"
            write_raw_yuv(videos / name, rgb_to_yuv420p(decoded))
            lines.append(f"{name},{crf * 1.5:.1f}")
    (tmp_path / "dmos.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "dmos.csv", videos


def test_mos_csv_reader(tiny_mos_database: tuple[Path, Path]) -> None:
    items = read_mos_csv(*tiny_mos_database)
    assert len(items) == 12 and {i.content for i in items} == {"coffee", "rocket", "chelsea"}
    assert items[0].label == 30.0


def test_fit_fusion_handles_dmos(
    tiny_mos_database: tuple[Path, Path],
    tiny_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mos_csv, videos = tiny_mos_database
    out = tmp_path / "fit"
    code, _, err = _run(
        capsys,
        "fit-fusion",
        "--ckpt",
        str(tiny_bundle),
        "--data.mos_csv",
        str(mos_csv),
        "--data.video_root",
        str(videos),
        "--data.score_direction",
        "lower_better",
        "--fusion",
        "nnls",
        "--n-splits",
        "10",
        "--out",
        str(out),
    )
    assert code == 0, err
    fusion = json.loads((out / "bundle" / "fusion.json").read_text())
    assert fusion["score_direction"] == "lower_better" and fusion["label_source"] == "mos:dmos.csv"
    assert min(fusion["params"]["beta"]) >= 0
    features = json.loads((out / "features.json").read_text())
    assert len(features) == 12 and {"blurring", "flickering"} <= set(features[0])
    # the new bundle scores: a higher-is-better prediction, i.e. the negated DMOS scale
    from sstam.fusion import Fusion, feature_matrix

    restored = Fusion.from_json(fusion)
    pred = restored.predict(feature_matrix(features))
    dmos = np.array([f["mos"] for f in features])
    assert np.corrcoef(pred, -dmos)[0, 1] > 0  # in-sample: fitted to −DMOS


def test_bench_runs_on_a_small_pan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(
        capsys, "bench", "--size", "64x64", "--frames", "9", "--json", "--out", str(tmp_path / "b")
    )
    assert code == 0, err
    record = json.loads(out[out.index("{") :])
    assert record["saliency_fps"] > 0 and record["pipeline_s"] > 0 and record["frames"] == 9
    assert (tmp_path / "b" / "results.json").is_file()
