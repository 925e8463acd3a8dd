"""``DFMEDataModule``: the synthetic benchmark (default) or an on-disk dataset, preprocessed once and cached,
split into subject-independent folds (spec §2.8); batches carry uint8 clips (normalised on the device)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from dfme.dataset import LAYOUTS
from dfme.face import DetectorConfig
from dfme.flow import FLOWS
from dfme.losses import sampler_weights
from dfme.models.registry import MODEL_INPUTS, MODELS
from dfme.pipeline import PipelineConfig
from dfme.sampling import STRATEGIES
from dfme.sources import DiskSource, ProcessedSet, SyntheticSource, process_source
from dfme.splits import subject_folds, train_subject_subset
from dfme.synthetic import SyntheticConfig
from dfme.tim import FALLBACKS
from paperlab_core.data import resolve_data_root
from paperlab_core.errors import ConfigError

TASKS = ("emotion", "au")
CLIP_INPUTS = ("frames", "onset_diff")


class ArrayDataset(Dataset):
    """Items ``(input, target, index)`` from preprocessed arrays; ``variants`` (N, V, ...) picks a random cached
    training variant per draw (``segment_random``); ``references`` (N, S, S, C) are prepended to the clip as frame
    0 (the ``onset_diff`` input: T + 1 frames, the module subtracts frame 0 from the other T)."""

    def __init__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        indices: np.ndarray,
        variants: np.ndarray | None = None,
        references: np.ndarray | None = None,
    ) -> None:
        self.inputs = inputs
        self.targets = targets
        self.indices = indices
        self.variants = variants
        self.references = references

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        index = int(self.indices[item])
        if self.variants is not None:
            choice = int(torch.randint(self.variants.shape[1], (1,)))
            x = self.variants[index, choice]
        else:
            x = self.inputs[index]
        if self.references is not None:
            x = np.concatenate([self.references[index][None], x])
        return torch.from_numpy(np.ascontiguousarray(x)), torch.as_tensor(self.targets[index]), index


class DFMEDataModule(LightningDataModule):
    """Data of one cross-validation fold.

    Args:
        root: a DFME root (``annotations.csv`` + frames/videos); ``None`` = the synthetic benchmark.
        layout: ``dfme``, or ``casme2``/``samm`` coding sheets.
        task: ``emotion`` (7 classes) or ``au`` (multi-label over the dataset's AU vocabulary).
        sampling: key-frame strategy (spec §2.5); ``num_frames`` T; ``size`` S of the aligned square frames.
        grayscale: single-channel clips (the 3D CNNs then see the grey channel repeated).
        clip_input: ``frames`` (normalised frames, the published setup) or ``onset_diff`` (every frame minus the
            aligned onset frame, normalised; removes the static appearance — see the README's deviations; ≤ 0.4.1
            subtracted the clip's first frame, the same for strategies that start at the onset).
        flow: ``farneback`` or ``tvl1`` for the flow models (onset → apex).
        tim_fallback: TIM's rank-deficiency fallback (weights path needs none; used with ``tim_method=svd``).
        tim_method: ``weights`` (closed form, default) or ``svd`` (the published algorithm).
        detect_scale: the onset frame is downsized by this factor before face detection (speed).
        n_folds, fold, split_seed, stratified: subject-independent folds; ``fold`` is the test fold.
        train_subject_fraction: train on this share of the fold's training subjects (Table D).
        batch_size, num_workers: loaders.
        cache_dir: preprocessed arrays (default ``$PAPERLAB_DATA`` or ``~/.cache/paperlab/dfme``/cache).
        subjects, synthetic_seed: size and seed of the synthetic benchmark.
        sampler_power: the balanced sampler draws samples with weight n_y^-power (1 = balanced, 0.5 = sqrt).
        model_name: linked from ``model.name`` (clips or flows); balanced_sampler: linked from ``model.imbalance``.
        meb_fixes: CASME II/SAMM: re-apply MEB's corrections of known sheet errors instead of raising.
    """

    def __init__(
        self,
        root: str | None = None,
        layout: str = "dfme",
        task: str = "emotion",
        sampling: str = "tim_on_off",
        num_frames: int = 16,
        size: int = 64,
        grayscale: bool = False,
        clip_input: str = "frames",
        flow: str = "farneback",
        tim_method: str = "weights",
        tim_fallback: str = "weights",
        detect_scale: float = 0.5,
        n_folds: int = 10,
        fold: int = 0,
        split_seed: int = 0,
        stratified: bool = False,
        train_subject_fraction: float = 1.0,
        batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: str | None = None,
        subjects: int = 60,
        synthetic_seed: int = 0,
        sampler_power: float = 1.0,
        model_name: str = "r3d_18",
        balanced_sampler: bool = False,
        meb_fixes: bool = False,
    ) -> None:
        super().__init__()
        checks = {
            "layout": (layout, LAYOUTS), "task": (task, TASKS), "sampling": (sampling, STRATEGIES),
            "flow": (flow, FLOWS), "tim_fallback": (tim_fallback, FALLBACKS), "tim_method": (tim_method, ("weights", "svd")),
            "model_name": (model_name, MODELS), "clip_input": (clip_input, CLIP_INPUTS),
        }  # fmt: skip
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(f"data.{name} must be one of {', '.join(allowed)}, got {value!r}")
        if not 0 <= fold < n_folds:
            raise ConfigError(f"data.fold must be in 0..{n_folds - 1}, got {fold}")
        if not 0.0 < train_subject_fraction <= 1.0:
            raise ConfigError(f"data.train_subject_fraction must be in (0, 1], got {train_subject_fraction}")
        if root is None and layout != "dfme":
            raise ConfigError(
                f"data.layout {layout} needs data.root (the synthetic benchmark is in the DFME layout)"
            )
        self.save_hyperparameters(logger=False)
        self.inputs_kind = MODEL_INPUTS[model_name]
        self.processed: ProcessedSet | None = None
        self.source: SyntheticSource | DiskSource | None = None
        self.references: np.ndarray | None = None

    # ------------------------------------------------------------------------------------------ configuration
    def pipeline_config(self) -> PipelineConfig:
        hp = self.hparams
        flow = hp.flow if self.inputs_kind != "clip" else None
        return PipelineConfig(
            sampling=hp.sampling, num_frames=hp.num_frames, size=hp.size, grayscale=hp.grayscale,
            tim_method=hp.tim_method, tim_fallback=hp.tim_fallback, flow=flow,
            detector=DetectorConfig(detect_scale=hp.detect_scale),
        )  # fmt: skip

    def cache_path(self) -> Path:
        hp = self.hparams
        return Path(hp.cache_dir) if hp.cache_dir else resolve_data_root(None, "dfme") / "cache"

    def build_source(self) -> SyntheticSource | DiskSource:
        hp = self.hparams
        if self.source is None:
            if hp.root is None:
                self.source = SyntheticSource(SyntheticConfig(subjects=hp.subjects, seed=hp.synthetic_seed))
            else:
                options = {"meb_fixes": hp.meb_fixes} if hp.layout != "dfme" else {}
                self.source = DiskSource(hp.root, hp.layout, **options)
        return self.source

    def data_fingerprint(self) -> str:
        """The preprocessing cache key (source + pipeline); evaluate warns when it differs from training."""
        source = self.build_source()
        from dfme.sources import cache_key

        return cache_key(source.fingerprint(), self.pipeline_config(), self.inputs_kind == "clip")

    # ------------------------------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        if self.processed is not None:
            return
        hp = self.hparams
        source = self.build_source()
        self.processed = process_source(
            source,
            self.pipeline_config(),
            self.cache_path(),
            want_clip=self.inputs_kind == "clip",
            seed=hp.split_seed,
        )
        samples = source.samples
        self.sample_ids = np.array([s.sample_id for s in samples])
        self.labels = np.array([s.label for s in samples], np.int64)
        self.subject_ids = np.array([s.subject_id for s in samples])
        self.au_vocabulary = tuple(source.au_vocabulary)
        au_targets = np.zeros((len(samples), len(self.au_vocabulary)), np.float32)
        for i, s in enumerate(samples):
            for au in s.au.aus:
                au_targets[i, self.au_vocabulary.index(au)] = 1.0
        self.targets = self.labels if hp.task == "emotion" else au_targets
        try:
            self.folds = subject_folds(
                self.subject_ids, hp.n_folds, hp.split_seed, hp.stratified, self.labels
            )
        except ValueError as err:
            raise ConfigError(f"data: {err}") from None
        test = self.folds == hp.fold
        train = ~test
        if hp.train_subject_fraction < 1.0:
            train &= (
                train_subject_subset(
                    np.where(train, self.subject_ids, ""), hp.train_subject_fraction, hp.split_seed + hp.fold
                )
                & train
            )
        self.train_index = np.nonzero(train)[0]
        self.test_index = np.nonzero(test)[0]
        if len(self.train_index) == 0 or len(self.test_index) == 0:
            raise ConfigError(f"fold {hp.fold}: empty training or test set")
        inputs = self.processed.clips if self.inputs_kind == "clip" else self.processed.flows
        if self.inputs_kind == "flow2":
            inputs = inputs[:, :2]
        self.inputs = inputs
        diff = self.inputs_kind == "clip" and hp.clip_input == "onset_diff"
        self.references = self.processed.references if diff else None
        kind = "diff" if diff else self.inputs_kind
        references = self.references[self.train_index] if diff else None
        self.norm_mean, self.norm_std = channel_stats(inputs[self.train_index], kind, references)

    @property
    def num_outputs(self) -> int:
        return 7 if self.hparams.task == "emotion" else len(self.au_vocabulary)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels[self.train_index], minlength=7)

    # ------------------------------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        variants = self.processed.train_clips if self.processed is not None else None
        dataset = ArrayDataset(self.inputs, self.targets, self.train_index, variants, self.references)
        hp = self.hparams
        if hp.balanced_sampler:
            weights = sampler_weights(self.labels[self.train_index], hp.sampler_power, 7)
            sampler = WeightedRandomSampler(torch.as_tensor(weights), len(weights), replacement=True)
            return DataLoader(
                dataset, hp.batch_size, sampler=sampler, num_workers=hp.num_workers, drop_last=True
            )
        return DataLoader(dataset, hp.batch_size, shuffle=True, num_workers=hp.num_workers, drop_last=True)

    def _eval_loader(self) -> DataLoader:
        dataset = ArrayDataset(self.inputs, self.targets, self.test_index, references=self.references)
        return DataLoader(dataset, max(self.hparams.batch_size, 32), num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader()

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader()


def channel_stats(
    inputs: np.ndarray, kind: str, references: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the training inputs: clips in [0, 1] (``clip``), the differences of frames
    1..T−1 to ``references`` (``diff``; default: each clip's first frame), or flows as they are."""
    if kind == "diff":
        base = inputs[:, :1] if references is None else references[:, None]
        diff = inputs[:, 1:].astype(np.float32) - base.astype(np.float32)
        flat = diff.reshape(-1, inputs.shape[-1])
        scale = 255.0
    elif kind == "clip":
        flat = inputs.reshape(-1, inputs.shape[-1])
        scale = 255.0
    else:
        flat = np.moveaxis(inputs, 1, -1).reshape(-1, inputs.shape[1])
        scale = 1.0
    step = max(1, len(flat) // 2_000_000)  # a strided subsample bounds the cost on large datasets
    sample = flat[::step].astype(np.float64) / scale
    return sample.mean(axis=0).astype(np.float32), np.maximum(sample.std(axis=0), 1e-6).astype(np.float32)
