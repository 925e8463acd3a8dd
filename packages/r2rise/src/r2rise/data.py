"""LightningDataModule for training one policy (``r2rise train``): embedded expert demonstrations or a file."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

from paperlab_core.data import require_dir
from paperlab_core.errors import ConfigError
from r2rise.demos import Demonstrations, load_demos, make_demos, resolve_demos_path
from r2rise.learners import OBS_SCALINGS, Normaliser
from r2rise.masks import frame_weights, generate_grids, grids_to_masks, num_blocks


class FullBatch(Dataset):
    """One item: every valid frame at once (full-batch training, as in the R2RISE ensemble)."""

    def __init__(self, obs: torch.Tensor, actions: torch.Tensor, weights: torch.Tensor) -> None:
        self.batch = (obs, actions, weights)

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.batch


def _identity(items: list) -> tuple[torch.Tensor, ...]:
    return items[0]


class DemosDataModule(LightningDataModule):
    """Expert demonstrations, optionally block-masked like one retraining of the R2RISE loop.

    Args:
        env_id: gymnasium env id (classic control has hand-written experts).
        demos: a demonstrations ``.npz`` (package format) or a folder holding ``demos.npz``, relative to ``root``
            when that is given; ``None`` generates them with the expert.
        root: folder holding demonstration files (must exist when given).
        demonstrator: ``module:callable`` expert for envs without a hand-written one.
        num_demos: number of generated demonstrations D.
        length: frames per generated demonstration T (``None``: one full episode each).
        exec_noise: ε_exec, probability that the executed action is random (labels stay the expert's).
        corrupt_frac: probability that a block's labels are flipped (planted experiment; 0 = clean).
        block: block length in frames.
        seed: seed of the demonstrations and of the plant.
        mask_keep_p: train on the kept frames of a random block mask with this KEEP probability (``None``: all).
        mask_index: which mask of ``generate_masks(.., seed=mask_seed)`` to use (mask i of an explain run).
        mask_seed: seed of the masks.
        obs_scaling: ``env`` (fixed per-env constants) or ``demos`` (mean/std of the full demonstration set).
        batch_size: ``None`` trains full batch (one Adam step per epoch, the R2RISE ensemble's regime); an integer
            trains on minibatches of that size drawn with replacement from the training frames, ``updates_per_epoch``
            updates per epoch (the paper code: 32, validation every 500 updates).
        updates_per_epoch: minibatch updates between two validations.
        val_fraction: hold out this fraction of the (kept) frames, shuffled with ``seed``, for ``val/loss`` and
            ``val/acc`` (the paper code: 0.1); 0 validates on the training frames and names the accuracy
            ``val/train_acc``.
        val_batch_size: minibatch of the validation loss (the paper code sums it over minibatches of 10).
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        demos: str | None = None,
        root: str | None = None,
        demonstrator: str | None = None,
        num_demos: int = 5,
        length: int | None = 200,
        exec_noise: float = 0.1,
        corrupt_frac: float = 0.45,
        block: int = 10,
        seed: int = 0,
        mask_keep_p: float | None = None,
        mask_index: int = 0,
        mask_seed: int = 0,
        obs_scaling: str = "env",
        batch_size: int | None = None,
        updates_per_epoch: int = 500,
        val_fraction: float = 0.0,
        val_batch_size: int = 10,
    ) -> None:
        super().__init__()
        if obs_scaling not in OBS_SCALINGS:
            raise ConfigError(f"data.obs_scaling must be 'env' or 'demos', got {obs_scaling!r}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"data.batch_size must be ≥ 1 (or null for full batch), got {batch_size}")
        if updates_per_epoch < 1 or val_batch_size < 1:
            raise ConfigError("data.updates_per_epoch and data.val_batch_size must be ≥ 1")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        self.batch_size = batch_size
        self.updates_per_epoch = updates_per_epoch
        self.val_fraction = val_fraction
        self.val_batch_size = val_batch_size
        if root is not None:
            require_dir(root, "data root", "data.root must be an existing folder holding demonstration files")
        self.env_id = env_id
        self.root = root
        self.demos_path = resolve_demos_path(demos, root) if demos else None
        self.demonstrator = demonstrator
        self.num_demos = num_demos
        self.length = length
        self.exec_noise = exec_noise
        self.corrupt_frac = corrupt_frac
        self.block = block
        self.seed = seed
        self.mask_keep_p = mask_keep_p
        self.mask_index = mask_index
        self.mask_seed = mask_seed
        self.obs_scaling = obs_scaling
        self.demonstrations: Demonstrations | None = None
        self.normaliser: Normaliser | None = None

    def prepare_demos(self) -> Demonstrations:
        if self.demonstrations is None:
            if self.demos_path:
                self.demonstrations = load_demos(self.demos_path, env_id=self.env_id)
            else:
                self.demonstrations = make_demos(
                    self.env_id,
                    self.num_demos,
                    self.length,
                    self.exec_noise,
                    self.corrupt_frac,
                    self.block,
                    self.seed,
                    self.demonstrator,
                )
        return self.demonstrations

    def data_fingerprint(self) -> str:
        """sha256 of the demonstrations file (generated demonstrations are fixed by the configuration)."""
        if self.demos_path is None:
            return "generated"
        from paperlab_core.data import sha256sum

        return sha256sum(self.demos_path)

    def setup(self, stage: str | None = None) -> None:
        demos = self.prepare_demos()
        obs, actions, _ = demos.frames()
        images = obs.ndim > 2  # Atari stacks stay (F, 4, 84, 84) uint8; the CNN scales them itself
        if not images:
            obs = obs.reshape(obs.shape[0], -1)
        self.normaliser = (
            None
            if images
            else Normaliser.for_env(self.env_id, obs)
            if self.obs_scaling == "env"
            else Normaliser.fit(obs)
        )
        weights = np.ones((1, obs.shape[0]))
        if self.mask_keep_p is not None:
            grids = generate_grids(
                self.mask_index + 1,
                demos.num_demos,
                num_blocks(demos.length, self.block),
                self.mask_keep_p,
                self.mask_seed,
            )[self.mask_index : self.mask_index + 1]
            weights = frame_weights(grids_to_masks(grids, demos.length, self.block), demos.valid)
            if weights.sum() == 0:
                raise ConfigError(f"mask {self.mask_index} (keep_p={self.mask_keep_p}) keeps no frame")
        inputs = torch.as_tensor(obs) if images else torch.as_tensor(obs, dtype=torch.float32)
        labels = torch.as_tensor(actions, dtype=torch.long)
        kept = np.flatnonzero(weights[0] > 0)
        if self.val_fraction > 0:
            kept = np.random.default_rng([self.seed, 90_10]).permutation(kept)
            n_val = max(1, round(self.val_fraction * len(kept)))
            if n_val >= len(kept):
                raise ConfigError(f"data.val_fraction={self.val_fraction} leaves no training frame")
            val_index, train_index = np.sort(kept[:n_val]), np.sort(kept[n_val:])
        else:
            val_index, train_index = np.arange(obs.shape[0]), kept
        self.has_heldout = self.val_fraction > 0
        train_weights = np.zeros(obs.shape[0], dtype=np.float32)
        train_weights[train_index] = 1.0
        if self.batch_size is None:
            self.train_set = FullBatch(inputs, labels, torch.as_tensor(train_weights))
        else:
            index = torch.as_tensor(train_index)
            self.train_set = TensorDataset(inputs[index], labels[index], torch.ones(len(index)))
        index = torch.as_tensor(val_index)
        self.eval_set = TensorDataset(inputs[index], labels[index], torch.ones(len(index)))
        self.test_set = FullBatch(inputs, labels, torch.ones(obs.shape[0]))

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=1, collate_fn=_identity)

    def train_dataloader(self) -> DataLoader:
        if self.batch_size is None:
            return self._loader(self.train_set)
        sampler = RandomSampler(
            self.train_set,
            replacement=True,
            num_samples=self.batch_size * self.updates_per_epoch,
            generator=torch.Generator().manual_seed(self.seed),
        )
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        size = len(self.eval_set) if self.batch_size is None else self.val_batch_size
        return DataLoader(self.eval_set, batch_size=size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set)
