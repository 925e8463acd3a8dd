"""LightningModule for one behaviour-cloning policy (``r2rise train``); wiring only, math in ``learners``."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_lightning import LightningModule
from torch.nn import functional as F

from paperlab_core.errors import ConfigError
from r2rise.atari import NatureCNN
from r2rise.envs import env_spaces
from r2rise.evaluate import Evaluator
from r2rise.learners import POLICY_MODULES


class BCPolicyModule(LightningModule):
    """Behaviour cloning of one policy on (optionally masked) demonstrations, full batch.

    Args:
        env_id: gymnasium env id (linked from ``data.env_id``); sets input size and ``action_space.n`` logits.
        learner: ``bc_mlp`` (obs → hidden tanh → logits), ``bc_linear`` (multinomial logistic regression) or
            ``bc_cnn`` (Nature-DQN CNN on 4×84×84 Atari stacks).
        hidden: hidden width of ``bc_mlp``.
        lr: Adam learning rate (full batch; one optimiser step per epoch).
        eval_episodes: episodes of the return evaluation (validation and test).
        eval_epsilon: ε-greedy exploration during evaluation (0 = greedy).
        eval_seed: seed of the evaluation's common random numbers.
        eval_max_steps: evaluation episode cap in agent steps (None = the env's own limit; Atari: 27,000).
        val_returns: evaluate returns in the env at every validation (``val/return_mean``); the Atari config turns
            it off (20 episodes per validation would dominate training; use ``r2rise evaluate --ckpt``).
        patience: early stopping as in the paper code: after more than ``patience`` consecutive validations
            without a lower ``val/loss`` (the summed validation cross-entropy) training stops; the parameters of the
            best validation are restored at the end and are what every checkpoint holds (the paper code saves its
            model only on improvement). ``None``: no early stopping, checkpoints hold the latest parameters.
    """

    def __init__(
        self,
        env_id: str = "CartPole-v1",
        learner: str = "bc_mlp",
        hidden: int = 32,
        lr: float = 1e-2,
        eval_episodes: int = 4,
        eval_epsilon: float = 0.0,
        eval_seed: int = 0,
        eval_max_steps: int | None = None,
        val_returns: bool = True,
        patience: int | None = None,
    ) -> None:
        super().__init__()
        if patience is not None and patience < 0:
            raise ConfigError(f"model.patience must be ≥ 0 (or null), got {patience}")
        if learner not in (*POLICY_MODULES, "bc_cnn"):
            raise ConfigError(f"model.learner must be bc_mlp, bc_linear or bc_cnn, got {learner!r}")
        self.save_hyperparameters()
        if learner == "bc_cnn":
            obs_shape, num_actions = env_spaces(env_id)
            self.policy = NatureCNN(num_actions, obs_shape[0])
            obs_dim = 1  # the CNN scales uint8 input by 1/255 itself
        else:
            obs_shape, num_actions = env_spaces(env_id)
            obs_dim = int(np.prod(obs_shape))
            self.policy = POLICY_MODULES[learner](obs_dim, num_actions, hidden)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.best_loss = float("inf")
        self.strikes = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        normaliser = getattr(datamodule, "normaliser", None)
        if normaliser is not None and stage == "fit" and self.hparams.learner != "bc_cnn":
            self.obs_mean.copy_(torch.as_tensor(normaliser.mean, dtype=self.obs_mean.dtype))
            self.obs_std.copy_(torch.as_tensor(normaliser.std, dtype=self.obs_std.dtype))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy((obs - self.obs_mean) / self.obs_std)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        obs, actions, weights = batch
        ce = F.cross_entropy(self(obs), actions, reduction="none")
        loss = (weights * ce).sum() / weights.sum().clamp_min(1.0)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def _accuracy(self, batch: tuple[torch.Tensor, ...], prefix: str) -> None:
        obs, actions, _ = batch
        accuracy = (self(obs).argmax(-1) == actions).float().mean()
        self.log(f"{prefix}/acc", accuracy, prog_bar=True, sync_dist=True)

    def _returns(self, prefix: str) -> None:
        hp = self.hparams
        evaluator = Evaluator(hp.env_id, hp.eval_episodes, hp.eval_epsilon, hp.eval_seed, hp.eval_max_steps)

        @torch.no_grad()
        def act(obs: np.ndarray) -> np.ndarray:
            """(1, B, *obs_shape) → (1, B) greedy actions (the CNN needs a flat batch axis)."""
            x = torch.as_tensor(obs, dtype=self.obs_mean.dtype, device=self.obs_mean.device)
            return self(x.flatten(0, 1)).argmax(-1).view(x.shape[:2]).cpu().numpy()

        returns = evaluator.evaluate(act, 1)[0]
        self.log(f"{prefix}/return_mean", float(returns.mean()), prog_bar=True, sync_dist=True)
        self.log(f"{prefix}/return_std", float(returns.std()), sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        """``val/loss``: cross-entropy summed over the validation frames (paper code); ``val/acc`` on held-out
        frames (``data.val_fraction`` > 0), else ``val/train_acc`` on the training demonstrations."""
        obs, actions, _ = batch
        logits = self(obs)
        held_out = getattr(getattr(self.trainer, "datamodule", None), "has_heldout", False)
        self.log(
            "val/loss", F.cross_entropy(logits, actions, reduction="sum"), reduce_fx="sum", sync_dist=True
        )
        correct = (logits.argmax(-1) == actions).float().sum()
        self.log(
            "val/acc" if held_out else "val/train_acc",
            correct / len(actions),
            prog_bar=True,
            sync_dist=True,
            batch_size=len(actions),
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        if self.hparams.val_returns:
            self._returns("val")
        loss = float(self.trainer.callback_metrics["val/loss"])
        if loss < self.best_loss:
            self.best_loss, self.strikes = loss, 0
            self.best_state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        else:
            self.strikes += 1
        if self.hparams.patience is not None and self.strikes > self.hparams.patience:
            self.trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """With early stopping, checkpoints hold the best-validation parameters (see ``patience``)."""
        if self.hparams.patience is not None and self.best_state is not None:
            checkpoint["state_dict"] = {k: v.clone() for k, v in self.best_state.items()}

    def on_train_end(self) -> None:
        if self.hparams.patience is not None and self.best_state is not None:
            self.load_state_dict(self.best_state)

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._accuracy(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._returns("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
