"""Where clips come from: the synthetic benchmark (rendered on demand) or an on-disk dataset; and the cached,
preprocessed arrays built from them (``dfme prepare`` / the data module)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from dfme.dataset import DFMEDataset, Sample, make_reader
from dfme.labels import EMOTIONS, parse_aus
from dfme.pipeline import FrameReader, PipelineConfig, process_sample
from dfme.synthetic import SYNTHETIC_AUS, SyntheticConfig, SyntheticDataset
from paperlab_core.logging import log

# 2: area-resize after the warp, full-resolution detection retry, blocked TIM; 3: onset references;
# 4: detection on one OpenCV thread (the eye pair no longer depends on thread timing)
CACHE_VERSION = 4
TRAIN_VARIANTS = 3
"""Training variants cached per clip for ``segment_random`` (one seeded draw per variant; an epoch picks one)."""


@functools.lru_cache(maxsize=2)
def _synthetic(config: SyntheticConfig) -> SyntheticDataset:
    return SyntheticDataset.generate(config)


class SyntheticSource:
    """The embedded default: clips rendered from a :class:`SyntheticConfig`."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.config = config
        self.dataset = _synthetic(config)
        self.samples = [
            Sample(
                c.sample_id,
                self.dataset.subjects[c.subject].subject_id,
                c.part,
                float(c.fps),
                c.onset,
                c.apex,
                c.offset,
                c.emotion,
                EMOTIONS.index(c.emotion),
                parse_aus("+".join(map(str, c.aus))),
                c.n_frames,
                Path("<synthetic>"),
                "synthetic",
            )
            for c in self.dataset.clips
        ]
        self.au_vocabulary = SYNTHETIC_AUS

    def reader(self, index: int) -> FrameReader:
        frames = self.dataset.render(index)
        return lambda positions: frames[np.asarray(positions, np.int64)]

    def fingerprint(self) -> str:
        return json.dumps({"synthetic": self.config.to_dict()}, sort_keys=True, default=str)


class DiskSource:
    """A validated on-disk dataset (DFME layout, or CASME II / SAMM coding sheets)."""

    def __init__(self, root: str | Path, layout: str = "dfme", **options: Any) -> None:
        if layout == "dfme":
            dataset = DFMEDataset(root)
            self.samples = dataset.samples
        else:
            from dfme.coding_sheets import load_coding_sheet

            self.samples = load_coding_sheet(root, layout, **options)
        self.root = Path(root)
        self.layout = layout
        self.au_vocabulary = tuple(sorted({a for s in self.samples for a in s.au.aus}))

    def reader(self, index: int) -> FrameReader:
        return make_reader(self.samples[index])

    def fingerprint(self) -> str:
        stats = [
            (s.sample_id, str(s.source), s.n_frames, s.onset, s.apex, s.offset, s.label) for s in self.samples
        ]
        digest = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
        return json.dumps({"root": str(self.root.resolve()), "layout": self.layout, "samples": digest})


@dataclass
class ProcessedSet:
    """Preprocessed arrays of every sample: ``clips`` (N, T, S, S, C) uint8 (eval sampling), ``train_clips``
    (N, V, T, S, S, C) for ``segment_random`` (else None), ``flows`` (N, 3, 28, 28) float32 or None,
    ``align_status`` (N,) and ``tim_fallback`` (N,) strings ('' = none), ``references`` (N, S, S, C) uint8, the
    aligned onset frames (with clips, else None)."""

    clips: np.ndarray | None
    train_clips: np.ndarray | None
    flows: np.ndarray | None
    align_status: np.ndarray
    tim_fallback: np.ndarray
    key: str
    references: np.ndarray | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        from collections import Counter

        return {
            "align_status": dict(Counter(self.align_status.tolist())),
            "tim_fallback": dict(Counter(f for f in self.tim_fallback.tolist() if f)),
        }


_MEMORY: dict[str, ProcessedSet] = {}
"""Processed sets already loaded in this process (folds and cells of one ``cv``/``reproduce`` share them)."""
_MEMORY_LIMIT = 2


def cache_key(source_fingerprint: str, pipeline: PipelineConfig, want_clip: bool) -> str:
    blob = json.dumps(
        {"v": CACHE_VERSION, "source": source_fingerprint, "pipeline": asdict(pipeline), "clip": want_clip},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def process_source(
    source: SyntheticSource | DiskSource,
    pipeline: PipelineConfig,
    cache_dir: Path | None = None,
    want_clip: bool = True,
    seed: int = 0,
) -> ProcessedSet:
    """Preprocess every sample (or load the cache entry). The cache entry is written to a temporary file and
    renamed, so an interrupted run never leaves a partial entry; processes that need the same missing entry
    (``reproduce --jobs``) build it once: the others wait on a lock file beside it, then load it."""
    key = cache_key(source.fingerprint(), pipeline, want_clip)
    if key in _MEMORY:
        return _MEMORY[key]
    if cache_dir is None:
        return _remember(_process(source, pipeline, want_clip, seed, key))
    path = cache_dir / f"processed-{key}.npz"
    if path.is_file():  # the common case takes no lock
        return _remember(_load(path, key))
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path.with_name(f".{path.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"dfme: another process is preprocessing {path.name}; waiting for it")
        lock.acquire()
    try:
        if path.is_file():  # built by the process we waited for
            return _remember(_load(path, key))
        result = _process(source, pipeline, want_clip, seed, key)
        arrays = {k: v for k, v in asdict(result).items() if isinstance(v, np.ndarray)}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        lock.release()
    return _remember(result)


def _load(path: Path, key: str) -> ProcessedSet:
    with np.load(path, allow_pickle=False) as data:
        return ProcessedSet(
            data["clips"] if "clips" in data else None,
            data["train_clips"] if "train_clips" in data else None,
            data["flows"] if "flows" in data else None,
            data["align_status"], data["tim_fallback"], key,
            data["references"] if "references" in data else None,
        )  # fmt: skip


def _process(
    source: SyntheticSource | DiskSource, pipeline: PipelineConfig, want_clip: bool, seed: int, key: str
) -> ProcessedSet:
    """Preprocess every sample of ``source`` (progress every tenth of the clips)."""
    n = len(source.samples)
    variants = TRAIN_VARIANTS if (want_clip and pipeline.sampling == "segment_random") else 0
    clips, train_clips, flows, status, fallback, references = [], [], [], [], [], []
    start = time.perf_counter()
    step = max(1, n // 10)
    for index, sample in enumerate(source.samples):
        read = source.reader(index)
        args = (sample.onset, sample.apex, sample.offset, sample.n_frames, sample.fps, pipeline)
        out = process_sample(read, *args, want_clip=want_clip)
        if out.clip is not None:
            clips.append(out.clip)
            references.append(out.reference)
        if out.flow is not None:
            flows.append(out.flow)
        status.append(out.align_status)
        fallback.append(out.tim_info.fallback or "" if out.tim_info else "")
        if variants:
            no_flow = replace(pipeline, flow=None)
            rngs = [np.random.default_rng([seed, index, v]) for v in range(variants)]
            train_clips.append(
                np.stack([process_sample(read, *args[:-1], no_flow, train=True, rng=r).clip for r in rngs])
            )
        if (index + 1) % step == 0 or index + 1 == n:
            elapsed = time.perf_counter() - start
            log(f"dfme: preprocessed {index + 1}/{n} clips ({elapsed:.0f} s)")
    return ProcessedSet(
        np.stack(clips) if clips else None,
        np.stack(train_clips) if train_clips else None,
        np.stack(flows) if flows else None,
        np.array(status),
        np.array(fallback),
        key,
        np.stack(references) if references else None,
    )


def _remember(processed: ProcessedSet) -> ProcessedSet:
    while len(_MEMORY) >= _MEMORY_LIMIT:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[processed.key] = processed
    return processed
