"""Video input (spec §6.8): raw YUV and y4m give identical RGB; bad input is one line with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sstam.errors import VideoInputError
from sstam.video_io import open_video, read_frames, rgb_to_yuv420p, write_raw_yuv, write_y4m_planes


def _planes(rng: np.random.Generator, frames: int = 3, width: int = 48, height: int = 32) -> list[np.ndarray]:
    rgb = rng.integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    return rgb_to_yuv420p(rgb)


def test_raw_yuv_and_y4m_give_identical_rgb(tmp_path: Path, rng: np.random.Generator) -> None:
    planes = _planes(rng)
    raw = write_raw_yuv(tmp_path / "clip.yuv", planes)
    y4m = write_y4m_planes(tmp_path / "clip.y4m", planes, 48, 32, 25.0)
    a, info_a = read_frames(raw, size=(48, 32))
    b, info_b = read_frames(y4m)
    assert a.shape == (3, 32, 48, 3) and info_a.frames == 3 and info_b.container == "yuv4mpegpipe"
    np.testing.assert_array_equal(a, b)


def test_size_from_the_file_name(tmp_path: Path, rng: np.random.Generator) -> None:
    raw = write_raw_yuv(tmp_path / "talk_48x32_12fps.yuv", _planes(rng, 2))
    source = open_video(raw)
    assert (source.info.width, source.info.height, source.info.fps) == (48, 32, 12.0)
    assert len(source.info.notices) == 2


@pytest.mark.data
def test_cisco_yuv_equals_its_y4m_wrapping(shared_data: Path, tmp_path: Path) -> None:
    raw = shared_data / "video" / "openh264" / "CiscoVT2people_320x192_12fps.yuv"
    data = np.frombuffer(raw.read_bytes(), np.uint8).reshape(9, 192 * 3 // 2, 320)
    y4m = write_y4m_planes(tmp_path / "cisco.y4m", list(data), 320, 192, 12.0)
    a, _ = read_frames(raw, size=(320, 192))
    b, _ = read_frames(y4m)
    assert a.shape == (9, 192, 320, 3)
    np.testing.assert_array_equal(a, b)


def test_wrong_raw_size_names_both_numbers(tmp_path: Path, rng: np.random.Generator) -> None:
    raw = write_raw_yuv(tmp_path / "clip.yuv", _planes(rng, 2))
    with pytest.raises(VideoInputError, match=r"4608 bytes.*2400 bytes each.*1\.920 frames"):
        open_video(raw, size=(40, 40))


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``sstam ARGS`` in this process (imports once); returns (status, stdout, stderr)."""
    from sstam.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _bad_inputs(tmp: Path, rng: np.random.Generator) -> dict[str, list[str]]:
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "text.mp4").write_text("this is not a video\n" * 20)
    write_raw_yuv(tmp / "clip.yuv", _planes(rng, 2))
    # a container with an audio stream only
    import av

    with av.open(str(tmp / "audio.mka"), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    small = write_y4m_planes(tmp / "small.y4m", _planes(rng, 3, 32, 24), 32, 24, 25.0)
    single = write_y4m_planes(tmp / "single.y4m", _planes(rng, 1, 64, 64), 64, 64, 25.0)
    return {
        "missing": [str(tmp / "missing.mp4")],
        "empty": [str(tmp / "empty.mp4")],
        "not-a-video": [str(tmp / "text.mp4")],
        "no-video-stream": [str(tmp / "audio.mka")],
        "wrong-raw-size": [str(tmp / "clip.yuv"), "--size", "40x40"],
        "raw-without-size": [str(tmp / "clip.yuv")],
        "smaller-than-patch": [str(small)],
        "single-frame": [str(single)],
    }


def test_bad_videos_are_one_line_with_status_2(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str], tiny_bundle: Path
) -> None:
    for case, args in _bad_inputs(tmp_path, rng).items():
        code, out, err = _cli(capsys, "score", *args, "--ckpt", str(tiny_bundle))
        errors = [line for line in err.splitlines() if line.startswith("sstam: error:")]
        assert code == 2, (case, err)
        assert "Traceback" not in err, case
        assert len(errors) == 1 and len(err.strip().splitlines()) <= 2, (case, err)
        assert out == "", case


def test_bad_video_in_a_fresh_process(tmp_path: Path) -> None:
    """The console script itself: one line, status 2, no traceback, before torch is imported."""
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    for name in ("missing.mp4", "empty.mp4"):
        done = subprocess.run(
            [sys.executable, "-m", "sstam.cli", "score", name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("sstam: error: ") and "Traceback" not in done.stderr
