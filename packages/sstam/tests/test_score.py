"""The scoring pipeline and the ``sstam score`` tool (spec §6.1, §6.16)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from sstam.stills import load_still
from sstam.synth import PEAS, pan_clip
from sstam.video_io import rgb_to_yuv420p, write_y4m_planes


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return pan_clip(load_still("astronaut"), 64, 9)


def test_score_shapes_and_keys(tiny_model, clip: np.ndarray) -> None:
    result = tiny_model.score(clip, per_frame=True, return_saliency=True)
    assert isinstance(result.score, float)
    assert list(result.intensities) == list(PEAS)
    assert all(0.0 <= v <= 1.0 for v in result.intensities.values())
    assert result.saliency.shape == (9, 64, 64) and result.saliency.min() >= 0 and result.saliency.max() <= 1
    assert all(len(result.per_frame[k]) == 9 for k in (*PEAS, "saliency_mean"))
    assert result.windows == [0, 4, 5]  # L = 4: 0, 4 and the border-aligned last window
    assert not result.warnings


def test_short_clip_has_null_temporal_intensities(tiny_model, clip: np.ndarray) -> None:
    result = tiny_model.score(clip[:3])
    assert result.intensities["flickering"] is None and result.intensities["floating"] is None
    assert any("fewer than the temporal window" in w for w in result.warnings)
    assert np.isfinite(result.score)  # fusion imputes the training mean


def test_uniform_saliency_weights_are_the_unweighted_mean(tiny_model, clip: np.ndarray) -> None:
    """With S ≡ 1 the spatial intensity of a frame is the plain mean of the patch probabilities."""
    engine = tiny_model.engine
    engine.pipeline.saliency.enabled = False
    try:
        analysis = engine.analyze(clip[:4])
    finally:
        engine.pipeline.saliency.enabled = True
    from sstam.grid import extract_patches, patch_grid

    corners = patch_grid(64, 64, engine.pipeline.patch)
    probs = engine.spatial_probs(extract_patches(clip[:1], corners, engine.pipeline.patch)[0])
    np.testing.assert_allclose(analysis.spatial[0], probs.mean(axis=0), rtol=1e-6)


@pytest.fixture(scope="module")
def bundle_and_video(
    tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory, clip: np.ndarray
) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("video")
    video = write_y4m_planes(folder / "clip.y4m", rgb_to_yuv420p(clip), 64, 64, 25.0)
    return tiny_bundle, video


def _score(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from sstam.cli import main

    capsys.readouterr()
    code = main(["score", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_per_frame_and_heat_maps(
    bundle_and_video: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle, video = bundle_and_video
    maps = tmp_path / "maps"
    code, out, err = _score(
        capsys,
        str(video),
        "--ckpt",
        str(bundle),
        "--json",
        "--per-frame",
        "--saliency-png",
        str(maps),
        "--png-stride",
        "4",
    )
    assert code == 0, err
    document = json.loads(out)
    assert {
        "file",
        "container",
        "width",
        "height",
        "fps",
        "frames",
        "score",
        "score_scale",
        "intensities",
        "per_frame",
        "model",
        "warnings",
        "timing_s",
    } <= set(document)
    assert set(document["intensities"]) == set(PEAS)
    assert document["model"]["temporal_variant"] == "sstam_ours (ours)"
    assert set(document["timing_s"]) == {"decode", "saliency", "spatial", "temporal", "fusion"}
    assert all(len(v) == 9 for v in document["per_frame"].values())
    assert document["frames"] == 9 and document["container"] == "yuv4mpegpipe"
    names = sorted(p.name for p in (tmp_path / "maps").iterdir())
    expected = {
        f"frame_{t:05d}_{k}.png"
        for t in (0, 4, 8)
        for k in ("saliency", "blurring", "blocking", "bleeding", "ringing")
    }
    expected |= {f"frame_{t:05d}_{k}.png" for t in (0, 4, 5) for k in ("flickering", "floating")}
    assert set(names) == expected
    assert cv2.imread(str(tmp_path / "maps" / "frame_00004_saliency.png")).shape == (64, 64, 3)


def test_cli_text_and_csv(bundle_and_video: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    bundle, video = bundle_and_video
    code, out, err = _score(capsys, str(video), "--ckpt", str(bundle))
    assert code == 0, err
    assert "SSTAM score:" in out and "flickering" in out and "(ours)" in out
    code, out, _ = _score(capsys, str(video), "--ckpt", str(bundle), "--per-frame", "--max-frames", "6")
    rows = out.strip().splitlines()
    assert rows[0].startswith("frame,blurring") and len(rows) == 7


def test_shipped_default_bundle_loads_and_scores(clip: np.ndarray) -> None:
    """``--ckpt default`` is package data: it loads without a network, the fusion exists and the score is finite."""
    from sstam.bundle import FILES, default_bundle_dir
    from sstam.score import SSTAM

    folder = default_bundle_dir()
    assert all((folder / name).is_file() for name in FILES)
    provenance = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["command"].startswith("sstam train")
    model = SSTAM.load("default")
    assert model.fusion is not None
    result = model.score(clip)
    assert np.isfinite(result.score)
    assert all(0.0 <= result.intensities[k] <= 1.0 for k in PEAS)
