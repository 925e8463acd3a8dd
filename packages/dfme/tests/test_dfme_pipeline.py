"""The preprocessing pipeline and its cache (spec §2.3–§2.5, §7)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from dfme import sources
from dfme.face import align_frame, rescale_alignment, resize_frames, warp_frames
from dfme.pipeline import PipelineConfig, process_sample
from dfme.sources import SyntheticSource, process_source
from dfme.synthetic import SyntheticConfig
from dfme.tim import tim
from filelock import FileLock


@pytest.fixture(scope="module")
def source() -> SyntheticSource:
    return SyntheticSource(SyntheticConfig(subjects=4, clips_per_subject=(2, 2)))


def test_tim_before_warp_equals_warp_before_tim(source):
    """The pipeline's crop → TIM → warp(112) → area-resize(48) equals warping and resizing every frame first
    and interpolating after (spec §6.3g: ≤ 2 grey levels; the reference rounds nothing but the end)."""
    sample = source.samples[0]
    frames = source.dataset.render(0)
    config = PipelineConfig(size=48)
    out = process_sample(
        lambda i: frames[i], sample.onset, sample.apex, sample.offset, sample.n_frames, sample.fps, config
    )
    alignment = align_frame(frames[sample.onset], 112, config.detector)
    warped = warp_frames(frames[sample.onset : sample.offset + 1].astype(np.float32), alignment.matrix, 112)
    reference = np.clip(np.rint(tim(resize_frames(warped, 48), 16)), 0, 255)
    assert out.clip.shape == (16, 48, 48, 3) and out.clip.dtype == np.uint8
    assert np.abs(reference - out.clip).max() <= 1  # float rounding only
    assert out.tim_info is not None and out.align_status in ("eyes", "box")


def test_small_outputs_are_area_resized_not_point_sampled(source):
    """At 32 px the clip is the 112-px aligned clip area-averaged (a bilinear warp straight to 32 px would
    sample 4 of every ~16 pixels: sensor noise not averaged, texture aliased)."""
    sample = source.samples[0]
    frames = source.dataset.render(0)
    small = process_sample(
        lambda i: frames[i], sample.onset, sample.apex, sample.offset, sample.n_frames, sample.fps,
        PipelineConfig(size=32),
    )  # fmt: skip
    big = process_sample(
        lambda i: frames[i], sample.onset, sample.apex, sample.offset, sample.n_frames, sample.fps,
        PipelineConfig(size=112),
    )  # fmt: skip
    expected = resize_frames(big.clip.astype(np.float32), 32)
    assert np.abs(small.clip - expected).max() <= 1.0  # the 112-px clip was rounded once more
    alignment = rescale_alignment(align_frame(frames[sample.onset], 112, PipelineConfig().detector), 32)
    direct = warp_frames(
        tim(frames[sample.onset : sample.offset + 1].astype(np.float32), 16), alignment.matrix, 32
    )
    assert np.abs(direct - expected).mean() > 4 * np.abs(small.clip - expected).mean()


def test_npy_window_reads_equal_full_reads(tmp_path, rng):
    from dfme.readers import NpyReader

    clip = (rng.random((12, 20, 24, 3)) * 255).astype(np.uint8)
    np.save(tmp_path / "c.npy", clip)
    reader = NpyReader(tmp_path / "c.npy")
    for positions in (np.arange(2, 9), np.array([0, 3, 3, 11])):
        np.testing.assert_array_equal(
            reader.read_window(positions, (3, 15, 5, 22)), clip[positions, 3:15, 5:22]
        )


def test_index_strategies_flow_and_grayscale(source):
    sample = source.samples[1]
    frames = source.dataset.render(1)
    config = PipelineConfig(
        sampling="uniform_on_off", num_frames=8, size=32, grayscale=True, flow="farneback"
    )
    out = process_sample(
        lambda i: frames[i], sample.onset, sample.apex, sample.offset, sample.n_frames, sample.fps, config
    )
    assert out.clip.shape == (8, 32, 32, 1) and out.tim_info is None
    assert out.flow.shape == (3, 28, 28)


def test_cache_roundtrip_and_no_partial_entry(source, tmp_path, monkeypatch):
    config = PipelineConfig(size=16, num_frames=4)
    first = process_source(source, config, tmp_path)
    assert first.clips.shape == (len(source.samples), 4, 16, 16, 3)
    sources._MEMORY.clear()
    again = process_source(source, config, tmp_path)
    np.testing.assert_array_equal(first.clips, again.clips)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    calls = {"n": 0}
    real = sources.process_sample

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sources, "process_sample", failing)
    with pytest.raises(KeyboardInterrupt):
        process_source(source, replace(config, size=20), tmp_path)
    left = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    assert len(left) == 1  # no partial entry, no temporary file


def test_processes_needing_one_missing_entry_build_it_once(source, tmp_path, monkeypatch, capsys):
    """A second process (``reproduce --jobs``) waits on the lock of the entry being built, then loads it."""
    config = PipelineConfig(size=16, num_frames=4)
    sources._MEMORY.clear()
    built = process_source(source, config, tmp_path)
    entry = next(tmp_path.glob("processed-*.npz"))
    content = entry.read_bytes()
    entry.unlink()
    sources._MEMORY.clear()
    held = threading.Event()

    def other_process() -> None:  # builds the entry under its lock
        with FileLock(entry.with_name(f".{entry.name}.lock")):
            held.set()
            time.sleep(0.5)
            entry.write_bytes(content)

    def must_not_run(*args, **kwargs):
        raise AssertionError("preprocessed again instead of waiting for the entry")

    monkeypatch.setattr(sources, "process_sample", must_not_run)
    builder = threading.Thread(target=other_process)
    builder.start()
    assert held.wait(10)
    loaded = process_source(source, config, tmp_path)
    builder.join()
    np.testing.assert_array_equal(loaded.clips, built.clips)
    np.testing.assert_array_equal(loaded.references, built.references)
    assert "another process is preprocessing" in capsys.readouterr().err


def test_segment_random_caches_seeded_training_variants(source, tmp_path):
    config = PipelineConfig(sampling="segment_random", num_frames=4, size=16)
    processed = process_source(source, config, tmp_path, seed=3)
    assert processed.train_clips.shape == (len(source.samples), sources.TRAIN_VARIANTS, 4, 16, 16, 3)


@pytest.mark.parametrize("strategy", ["apex_window", "uniform_on_off", "tim_on_off"])
def test_reference_is_the_aligned_onset_frame(source, strategy):
    """``onset_diff`` subtracts the aligned onset frame: warped and resized like the clip (independently here),
    and for strategies that start at the onset it is the clip's own first frame (so ≤ 0.4.1 records, which
    subtracted ``clip[0]``, are unchanged); ``apex_window`` starts near the apex, so its first frame is not it."""
    sample = source.samples[0]
    frames = source.dataset.render(0)
    config = PipelineConfig(size=48, sampling=strategy)
    out = process_sample(
        lambda i: frames[i], sample.onset, sample.apex, sample.offset, sample.n_frames, sample.fps, config
    )
    alignment = align_frame(frames[sample.onset], 112, config.detector)
    onset = resize_frames(warp_frames(frames[sample.onset : sample.onset + 1], alignment.matrix, 112), 48)[0]
    assert out.reference.shape == (48, 48, 3) and out.reference.dtype == np.uint8
    if strategy == "tim_on_off":  # TIM's reconstruction of the onset: float rounding only
        assert np.abs(out.reference.astype(int) - onset).max() <= 1
    else:
        np.testing.assert_array_equal(out.reference, onset)
    starts_at_onset = strategy != "apex_window"
    assert np.array_equal(out.reference, out.clip[0]) == starts_at_onset


def test_onset_diff_batches_carry_the_onset_frame_first(tmp_path):
    """The data module prepends each sample's aligned onset frame (T + 1 frames) for ``onset_diff`` only, and
    normalises with the statistics of (frames 1..T−1 − onset)."""
    from dfme.data import DFMEDataModule, channel_stats

    common = dict(subjects=6, size=16, num_frames=8, n_folds=3, batch_size=4, cache_dir=str(tmp_path))
    dm = DFMEDataModule(sampling="apex_window", clip_input="onset_diff", **common)
    dm.setup("fit")
    x, _, index = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 9, 16, 16, 3)
    np.testing.assert_array_equal(x[:, 0].numpy(), dm.processed.references[index.numpy()])
    np.testing.assert_array_equal(x[:, 1:].numpy(), dm.processed.clips[index.numpy()])
    clips, refs = dm.processed.clips[dm.train_index], dm.processed.references[dm.train_index]
    diff = (clips[:, 1:].astype(np.float64) - refs[:, None]) / 255.0
    np.testing.assert_allclose(dm.norm_mean, diff.reshape(-1, 3).mean(axis=0), atol=1e-6)
    assert not np.allclose(dm.norm_mean, channel_stats(clips, "diff")[0], atol=1e-6)  # not clip[0] here
    frames = DFMEDataModule(sampling="apex_window", clip_input="frames", **common)
    frames.setup("fit")
    assert next(iter(frames.train_dataloader()))[0].shape == (4, 8, 16, 16, 3)
