"""Codec-made flicker negatives of the temporal training cubes (ours, 0.5.2): off by default (the cubes are
unchanged), labelled 0, really x264/x265-encoded at one constant CRF/QP, never in validation or test cubes; one
validation path for the cube options (library: ValueError, CLI: one line, exit status 1)."""

from __future__ import annotations

import numpy as np
import pytest
from sstam.codec import _encoder_options, codec_roundtrip, codec_roundtrip_in_memory, have_codecs
from sstam.datasets import build_cube_set, check_cube_options
from sstam.stills import HELDOUT_STILLS, load_still
from sstam.synth import psnr

from paperlab_core.errors import ConfigError

needs_codecs = pytest.mark.skipif(not have_codecs(), reason="PyAV with libx264 is not installed")
KW = {"stills": ["coffee", "grass"], "n_per_class": 8, "frames": 3, "patch": 64, "seed": 2}


def _clip_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([psnr(x, y) for x, y in zip(a, b, strict=True)]))


def test_codec_negatives_off_by_default_leave_the_cubes_unchanged() -> None:
    plain = build_cube_set(**KW)
    # the codec knobs do nothing while codec_static is 0 (no random draw, no encode)
    same = build_cube_set(
        **KW, codec_static=0.0, codec_codecs=("x265",), codec_crf=(30, 31), codec_qp=(40, 41)
    )
    for key in ("cubes", "labels", "kind", "level", "has_prev"):
        np.testing.assert_array_equal(getattr(plain, key), getattr(same, key))
    assert "codec_static" not in plain.kind.tolist()


@needs_codecs
def test_in_memory_round_trip_is_a_real_encode_that_degrades_with_the_setting() -> None:
    pan = np.stack(
        [
            np.ascontiguousarray(load_still("coffee")[10 + t : 74 + t, 20 + 2 * t : 84 + 2 * t])
            for t in range(9)
        ]
    )
    fine = codec_roundtrip_in_memory(pan, "x264", crf=20)
    coarse = codec_roundtrip_in_memory(pan, "x264", crf=51)
    hevc = codec_roundtrip_in_memory(pan, "x265", qp=51)
    for out in (fine, coarse, hevc):
        assert out.shape == pan.shape and out.dtype == np.uint8
    assert _clip_psnr(pan, fine) > _clip_psnr(pan, coarse) + 5.0  # CRF 20 ≫ CRF 51
    assert 15.0 < _clip_psnr(pan, hevc) < 40.0  # QP 51: visibly coded, not noise
    # the same codec as the file-based helper (encoders are not bit-reproducible here: compare closely)
    on_disk = codec_roundtrip(pan, "x264", crf=20)
    assert _clip_psnr(on_disk, fine) > 40.0


def test_encoder_options_hold_one_constant_setting() -> None:
    x264 = _encoder_options("x264", 35, None, "medium", None, threads=1)
    assert x264 == {"preset": "medium", "crf": "35", "threads": "1"}
    x265 = _encoder_options("x265", None, 42, "medium", None, threads=1)
    assert x265["x265-params"].split(":") == ["log-level=error", "qp=42", "pools=1", "frame-threads=1"]
    # the ladders' encoder (threads left to the codec) is unchanged
    assert _encoder_options("x264", 28, None, "medium", None) == {"preset": "medium", "crf": "28"}


@needs_codecs
def test_codec_negatives_are_labelled_zero_and_encoded_at_one_quality(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sstam.codec

    calls: list[dict] = []
    real = sstam.codec.codec_roundtrip_in_memory

    def spy(frames: np.ndarray, codec: str, **kwargs) -> np.ndarray:
        out = real(frames, codec, **kwargs)
        calls.append({"codec": codec, "source": frames.copy(), "out": out, **kwargs})
        return out

    monkeypatch.setattr(sstam.codec, "codec_roundtrip_in_memory", spy)
    cubes = build_cube_set(**KW, codec_static=1.0, codec_crf=(28, 51), codec_qp=(32, 51))
    index = np.flatnonzero(cubes.kind == "codec_static")
    assert len(index) == KW["n_per_class"] == len(calls)  # every distractor, one encode each
    assert not ({"clean", "blur_only", "static_quant"} & set(cubes.kind.tolist()))
    assert (cubes.labels[index] == 0.0).all() and (cubes.level[index] == 0).all()
    assert {c["codec"] for c in calls} <= {"x264", "x265"}
    total = KW["frames"] + 1
    for i, call in zip(index, calls, strict=True):
        # one constant setting per clip: x264 CRF or x265 QP within the ladder's range, never both
        setting = {k: call[k] for k in ("crf", "qp") if call.get(k) is not None}
        assert list(setting) == (["crf"] if call["codec"] == "x264" else ["qp"])
        low, high = (28, 51) if call["codec"] == "x264" else (32, 51)
        assert low <= next(iter(setting.values())) <= high
        lead = len(call["source"]) - total
        assert 0 <= lead <= KW["frames"]
        cube = cubes.cubes[i]
        decoded = call["out"][lead:]
        if cubes.has_prev[i]:
            np.testing.assert_array_equal(cube, decoded)
        else:  # a window at the start of a clip: the predecessor is a copy of frame 1
            np.testing.assert_array_equal(cube[1:], decoded[1:])
        # the decoded clip is a coded version of the pan, not the pan itself
        source = call["source"][lead:]
        assert not np.array_equal(decoded, source) and _clip_psnr(source, decoded) > 18.0


def test_subpixel_pans_move_by_fractions_of_a_pixel() -> None:
    from sstam.datasets import _subpixel_pan_cube

    still = load_still("coffee")
    pan = _subpixel_pan_cube(still, 64, 9, np.random.default_rng(4))
    assert pan.shape == (9, 64, 64, 3) and pan.dtype == np.uint8
    # consecutive frames are no integer shift of each other (bilinear crops at fractional offsets)
    a, b = pan[3].astype(np.float32).mean(axis=2), pan[4].astype(np.float32).mean(axis=2)
    best = min(
        float(np.abs(a[8:-8, 8:-8] - np.roll(b, (dy, dx), (0, 1))[8:-8, 8:-8]).mean())
        for dy in range(-4, 5)
        for dx in range(-4, 5)
    )
    assert best > 0.5


@needs_codecs
def test_subpixel_codec_negatives() -> None:
    cubes = build_cube_set(**KW, codec_static=1.0, codec_motion="subpixel")
    index = cubes.kind == "codec_static"
    assert index.sum() == KW["n_per_class"] and (cubes.labels[index] == 0).all()


@needs_codecs
def test_codec_share_and_quant_share_mix() -> None:
    mixed = build_cube_set(**KW, static_quant=1.0, codec_static=0.5)
    kinds = set(mixed.kind.tolist())
    assert {"codec_static", "static_quant"} <= kinds and not ({"clean", "blur_only"} & kinds)


@needs_codecs
def test_codec_negatives_never_reach_validation_or_test_cubes() -> None:
    from sstam.data import SSTAMData

    data = SSTAMData(
        stage="temporal", temporal_per_class=6, temporal_val_per_class=4, temporal_codec_static=1.0
    )
    data.setup("fit")
    data.setup("test")
    train, val, test = data.train_sets[1], data.val_sets[1], data.test_sets[1]
    assert "codec_static" in train.kind.tolist()
    for held, seed in ((val, 1), (test, 2)):
        assert "codec_static" not in held.kind.tolist()
        reference = build_cube_set(
            HELDOUT_STILLS, 4, 8, 64, seed, min_positive_level=1, visible_threshold=1.0
        )
        np.testing.assert_array_equal(held.cubes, reference.cubes)


@pytest.mark.parametrize(
    ("library", "cli"),
    [
        ({"codec_static": 1.5}, {"temporal_codec_static": 1.5}),
        ({"quant_share": -0.1}, {"temporal_quant_share": -0.1}),
        ({"static_quant": 2.0}, {"temporal_static_quant": 2.0}),
        ({"quant_levels": [4]}, {"temporal_quant_levels": [4]}),
        (
            {"codec_static": 0.5, "codec_codecs": ["vp9"]},
            {"temporal_codec_static": 0.5, "temporal_codec_codecs": ["vp9"]},
        ),
    ],
)
def test_one_validation_path_for_the_cube_options(library: dict, cli: dict) -> None:
    from sstam.data import SSTAMData

    with pytest.raises(ValueError) as lib_err:  # library callers: a ValueError (ConfigError is one)
        build_cube_set(**KW, **library)
    with pytest.raises(ConfigError) as cli_err:
        SSTAMData(**cli)
    # the same check, the option named as each caller spells it
    assert isinstance(lib_err.value, ConfigError)
    assert str(cli_err.value) == "data.temporal_" + str(lib_err.value)
    with pytest.raises(ConfigError):
        check_cube_options(**library)


def test_bad_codec_option_is_one_line_with_a_config_error_status(capsys: pytest.CaptureFixture[str]) -> None:
    """Like every other bad ``--data.*`` value: one line, the ConfigError status (1; 2 is for malformed
    command lines), before any work."""
    from sstam.cli import main

    code = main(["train", "--data.temporal_codec_motion", "warp", "--trainer.fast_dev_run", "true"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == ConfigError.exit_code != 0
    errors = [line for line in lines if "error" in line]  # (the first line is the environment banner)
    assert errors == [lines[-1]] and lines[-1].startswith("sstam: error: data.temporal_codec_motion must be")
