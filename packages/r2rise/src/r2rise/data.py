"""LightningDataModule for training one policy (``r2rise train``): embedded expert demonstrations or a file."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

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
    ) -> None:
        super().__init__()
        if obs_scaling not in OBS_SCALINGS:
            raise ConfigError(f"data.obs_scaling must be 'env' or 'demos', got {obs_scaling!r}")
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
        self.train_set = FullBatch(
            inputs,
            torch.as_tensor(actions, dtype=torch.long),
            torch.as_tensor(weights[0], dtype=torch.float32),
        )
        self.eval_set = FullBatch(
            inputs,
            torch.as_tensor(actions, dtype=torch.long),
            torch.ones(obs.shape[0]),
        )

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(dataset, batch_size=1, collate_fn=_identity)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.eval_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.eval_set)
