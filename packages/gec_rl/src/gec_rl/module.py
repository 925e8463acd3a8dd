"""A thin LightningModule that runs an exact-sampler agent episode by episode and logs exact regret.

The agents are numpy (exact conjugate/SIR samplers and planners), so no gradient step happens here: each
training batch is one episode (``automatic_optimization = False``). Lightning provides the run directory,
logging, checkpointing of the agent state and the ``evaluate --ckpt`` verb.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from gec_rl.agents import make_agent
from gec_rl.agents.base import Agent
from gec_rl.envs import Simulator
from gec_rl.regret import (
    Diagnostics,
    EpisodeRecord,
    ExactEvaluator,
    job_seed,
    run_episode,
    summarise,
    task_for,
)
from gec_rl.theory import regret_decomposition
from paperlab_core.errors import ConfigError
from paperlab_core.logging import current_run_dir


class RegretModule(pl.LightningModule):
    """Runs ``agent`` on the datamodule's env and logs per-episode exact regret.

    Args:
        agent: ``ops_mb``, ``psrl``, ``max_of_j``, ``ucbvi`` or ``eps_greedy_q``.
        M: number of SIR models (``ops_mb``).
        eta: likelihood temperature η of the model-based agents (``ops_mb``, ``max_of_j``; the theory's η ≤ ½
            for log-likelihoods is in ``paper.yaml``).
        mf_eta: loss weight η of the squared-Bellman-loss agents (``ops_mf``, ``ops_linear_lmc``; the theory's
            η ≈ 1/H² is in ``paper.yaml``).
        gamma: optimism scale γ₀ (``inf`` selects the argmax model).
        gamma_schedule: ``sqrt_t`` (γ_t = γ₀√t), ``constant`` (γ_t = γ₀) or ``linear`` (γ_t = γ₀(t − 1)).
        alpha0: Dirichlet prior α₀ (``None`` = 1/S).
        sampler: ``auto``, ``dense`` or ``sparse`` Dirichlet sampling/planning path (``ops_mb``).
        J: number of samples of ``max_of_j``.
        ucb_c: UCBVI bonus scale c.
        ucb_delta: UCBVI confidence δ.
        epsilon: ε of ``eps_greedy_q``.
        q_lr: learning rate of ``eps_greedy_q``.
        mf_sampler: ``conditional`` (exact backward draws + SIR), ``gibbs`` or ``langevin`` sampler of ``ops_mf``.
        mf_mala: Metropolis-adjusted (``True``) or projected unadjusted (``False``) Langevin for ``ops_mf``.
        lmc_steps: Langevin steps per layer per episode of ``ops_linear_lmc`` (runs on the module's device).
        seed: seed of the agent's and the simulator's RNG (derived with the env and agent names).
    """

    def __init__(
        self,
        agent: str = "ops_mb",
        M: int = 8,
        eta: float = 1.0,
        mf_eta: float = 1.0,
        gamma: float = 1.0,
        gamma_schedule: str = "sqrt_t",
        alpha0: float | None = None,
        sampler: str = "auto",
        J: int = 8,
        ucb_c: float = 0.1,
        ucb_delta: float = 0.1,
        epsilon: float = 0.1,
        q_lr: float = 0.1,
        mf_sampler: str = "conditional",
        mf_mala: bool = True,
        lmc_steps: int = 30,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.agent_name = agent
        self.options: dict[str, dict[str, Any]] = {
            "ops_mb": {
                "M": M,
                "eta": eta,
                "gamma": gamma,
                "gamma_schedule": gamma_schedule,
                "alpha0": alpha0,
                "sampler": sampler,
            },
            "psrl": {"alpha0": alpha0},
            "max_of_j": {"J": J, "alpha0": alpha0, "eta": eta, "sampler": sampler},
            "ucbvi": {"c": ucb_c, "delta": ucb_delta},
            "eps_greedy_q": {"epsilon": epsilon, "lr": q_lr},
            "ops_mf": {
                "sampler": mf_sampler,
                "mala": mf_mala,
                "eta": mf_eta,
                "gamma": gamma,
                "gamma_schedule": gamma_schedule,
                "M": M,
            },
            "ops_linear_lmc": {
                "eta": mf_eta,
                "gamma": gamma,
                "gamma_schedule": gamma_schedule,
                "steps": lmc_steps,
            },
        }
        if agent not in self.options:
            raise ConfigError(
                f"model.agent {agent!r} is not supported by train (choose one of {', '.join(self.options)})"
            )
        self.seed = seed
        self.agent: Agent | None = None
        self.cum_regret = 0.0
        self.history: list[tuple[int, EpisodeRecord]] = []

    def setup(self, stage: str) -> None:
        if self.agent is not None:
            return
        data = self.trainer.datamodule
        self.mdp, self.horizon = data.mdp, data.horizon
        self.evaluator = ExactEvaluator(self.mdp, self.horizon)
        base = job_seed(self.seed, data.env, self.agent_name)
        task = task_for(self.mdp, self.horizon, data.episodes)
        options = dict(self.options[self.agent_name])
        if self.agent_name == "ops_linear_lmc":
            options["device"] = str(self.device)
        self.agent = make_agent(self.agent_name, task, np.random.default_rng(base), **options)
        self.sim = Simulator(self.mdp, base + 1)
        self.diagnostics = Diagnostics(self.mdp, self.evaluator)

    @property
    def uses_langevin_optimizer(self) -> bool:
        """``ops_linear_lmc`` and Langevin ``ops_mf`` (MALA proposals, projected-ULA updates) are optimiser steps."""
        hp = self.hparams
        return self.agent_name == "ops_linear_lmc" or (
            self.agent_name == "ops_mf" and hp.mf_sampler == "langevin"
        )

    def configure_optimizers(self) -> Any:
        """The exact samplers need no optimiser; the Langevin updates of ``ops_linear_lmc`` and the MALA proposals /
        projected-ULA updates of Langevin ``ops_mf`` are steps of a :class:`gec_rl.optim.Langevin` owned by this module (Lightning's strategy and
        precision apply)."""
        if not self.uses_langevin_optimizer:
            return None
        from gec_rl.optim import Langevin

        placeholder = torch.zeros(1, dtype=torch.float64, device=self.device)  # rebound to θ_h by the sampler
        return Langevin([placeholder], lr=0.1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        """One episode of :func:`gec_rl.regret.run_episode` (the same protocol as ``gec-rl regret``)."""
        t = int(batch[0].item())
        if self.uses_langevin_optimizer:
            self.agent.optimizer = self.optimizers()
        record = run_episode(self.agent, self.sim, self.evaluator, self.diagnostics, t, self.horizon)
        inst = self.evaluator.v_star - record.v_pi
        self.cum_regret += inst
        self.history.append((t, record))
        logs = {"train/inst_regret": inst, "train/cum_regret": self.cum_regret}
        if math.isfinite(record.model_value):
            logs["train/optimism_gap"] = self.evaluator.v_star - record.model_value
            logs["train/prediction_error"] = record.model_value - record.v_pi
        self.log_dict(logs, on_step=True, prog_bar=True)

    def on_train_end(self) -> None:
        from gec_rl.study import write_run_outputs

        run_dir = current_run_dir() or self.trainer.default_root_dir
        if not self.trainer.is_global_zero:
            return
        v_star = self.evaluator.v_star
        records = [record for _, record in self.history]
        cum = np.cumsum([v_star - r.v_pi for r in records])
        extra = summarise(cum) if len(cum) >= 4 else {"R_T": float(cum[-1]) if len(cum) else math.nan}
        model_values = np.array([r.model_value for r in records])
        if len(records) and np.all(np.isfinite(model_values)):
            extra.update(regret_decomposition(v_star, model_values, np.array([r.v_pi for r in records])))
        write_run_outputs(
            run_dir,
            self.history,
            v_star,
            {"v_star": v_star, "agent": self.agent_name, "episodes": len(cum), **extra},
        )

    def test_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        t = int(batch[0].item())
        self.agent.begin_episode(t)
        v_pi = self.evaluator.value(self.agent.policy())
        self.log_dict(
            {
                "test/v_star": self.evaluator.v_star,
                "test/v_pi": v_pi,
                "test/gap": self.evaluator.v_star - v_pi,
            }
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = self.agent.state_dict()
        checkpoint["agent_state"] = {
            key: torch.as_tensor(value) if isinstance(value, np.ndarray) else json.dumps(value)
            for key, value in state.items()
        }
        checkpoint["cum_regret"] = self.cum_regret

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = {
            key: value.numpy() if isinstance(value, torch.Tensor) else json.loads(value)
            for key, value in checkpoint["agent_state"].items()
        }
        if self.agent is None:
            raise RuntimeError("the agent must be built (setup) before a checkpoint is loaded")
        self.agent.load_state_dict(state)
        self.cum_regret = float(checkpoint.get("cum_regret", 0.0))
