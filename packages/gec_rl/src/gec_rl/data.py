"""The embedded default "data": an environment plus a stream of episode indices for the Lightning wrapper.

There are no datasets (spec §3): everything is generated offline from exact tabular models.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from gec_rl.envs import TabularMDP, make_env
from paperlab_core.errors import ConfigError


class EpisodeDataModule(pl.LightningDataModule):
    """One batch = one episode index t = 1..episodes on the env ``env`` with horizon ``horizon``.

    Args:
        env: short env name (``frozenlake``, ``riverswim``, ``taxi``, ...) or a toy-text gymnasium id.
        horizon: the fixed horizon H.
        episodes: the number of episodes T.
    """

    def __init__(self, env: str = "frozenlake", horizon: int = 20, episodes: int = 2000) -> None:
        super().__init__()
        if episodes < 1:
            raise ConfigError(f"data.episodes must be >= 1 (got {episodes})")
        self.env = env
        self.horizon = horizon
        self.episodes = episodes
        self.mdp: TabularMDP = make_env(env, horizon=horizon)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.arange(1, self.episodes + 1)), batch_size=1)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.tensor([self.episodes + 1])), batch_size=1)
