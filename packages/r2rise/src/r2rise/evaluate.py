"""Vectorised policy evaluation with common random numbers (spec §2.6).

Episode r of every model starts from the same initial state, and the ε-greedy draws u[r, t] and random actions
a[r, t] are shared by all models. CartPole runs in gymnasium's numpy ``CartPoleVectorEnv`` (one sub-env per
(model, episode)) with the initial states written into its state after ``reset``; other envs run in a ``sync`` vector
env with one seed per episode. Rewards are accumulated only until each sub-env's first ``terminated or truncated``;
whatever the vector env does after that (autoreset) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from paperlab_core.errors import ConfigError
from r2rise.envs import check_env_id, is_atari, make_env

Policy = Callable[[np.ndarray], np.ndarray]
"""Maps observations (M, B, d) to actions (M, B) for M models."""

NATIVE_VECTOR = ("CartPole-v1",)
ATARI_HORIZON = 27_000
"""Default Atari evaluation cap in agent steps (108k frames at frame-skip 4, the usual ALE limit)."""
ATARI_MAX_ENVS = 64
"""Default bound on simultaneous Atari envs: one preprocessed ALE env (frame stack included) took about 18 MiB of
resident memory (32 Breakout envs: 571 MiB, ale-py 0.12.1), so 64 envs are about 1.1 GiB; 200 models × 20 episodes
in one vector env would be about 70 GiB."""
SYNC_MAX_ENVS = 1024
"""Default bound for the other ``sync`` vector envs (MountainCar, Acrobot: a few KiB each)."""


@dataclass
class Evaluator:
    """Evaluate M policies on ``episodes`` common episodes each; ``evaluate`` returns (M, R) returns."""

    env_id: str = "CartPole-v1"
    episodes: int = 4
    epsilon: float = 0.0
    seed: int = 0
    max_steps: int | None = None
    max_envs: int | None = None
    """At most this many envs at once ((model, episode) pairs are evaluated in slices; the results do not depend on
    the slicing). ``None``: ``ATARI_MAX_ENVS`` for Atari, ``SYNC_MAX_ENVS`` for other sync envs, unbounded for
    CartPole's numpy vector env."""

    def __post_init__(self) -> None:
        check_env_id(self.env_id)
        if self.episodes < 1:
            raise ConfigError(f"episodes must be ≥ 1, got {self.episodes}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {self.epsilon}")
        if self.max_envs is not None and self.max_envs < 1:
            raise ConfigError(f"the evaluation env bound must be ≥ 1, got {self.max_envs}")
        if self.max_envs is None and is_atari(self.env_id):
            self.max_envs = ATARI_MAX_ENVS
        elif self.max_envs is None and self.env_id not in NATIVE_VECTOR:
            self.max_envs = SYNC_MAX_ENVS
        spec = gym.spec(self.env_id)
        default = ATARI_HORIZON if is_atari(self.env_id) else spec.max_episode_steps
        self.horizon = int(self.max_steps or default or 1000)
        probe = make_env(self.env_id)
        self.num_actions = int(probe.action_space.n)
        probe.close()
        rng = np.random.default_rng([self.seed, 2024])
        # common random numbers: shared by every model
        self.uniforms = rng.random((self.episodes, self.horizon))
        self.random_actions = rng.integers(self.num_actions, size=(self.episodes, self.horizon))
        self.initial_states = rng.uniform(
            -0.05, 0.05, size=(self.episodes, 4)
        )  # CartPole's reset distribution
        self.episode_seeds = [int(s) for s in rng.integers(2**31 - 1, size=self.episodes)]

    def _make(self, num_envs: int, episode_index: np.ndarray) -> tuple[gym.vector.VectorEnv, np.ndarray]:
        if self.env_id in NATIVE_VECTOR:
            env = gym.make_vec(
                self.env_id,
                num_envs=num_envs,
                vectorization_mode="vector_entry_point",
                max_episode_steps=self.horizon,
            )
            env.reset(seed=self.seed)
            state = self.initial_states[episode_index].T.copy()  # (4, num_envs) float64
            env.unwrapped.state = state
            return env, state.T.astype(np.float32)
        env = gym.vector.SyncVectorEnv([partial(make_env, self.env_id, self.horizon)] * num_envs)
        obs, _ = env.reset(seed=[self.episode_seeds[r] for r in episode_index])
        return env, obs

    def evaluate(
        self, policy: Policy | Any, num_models: int, episodes: list[int] | None = None
    ) -> np.ndarray:
        """Per-episode returns (M, R) of ``num_models`` policies; ``episodes`` selects a subset of episode indices.

        ``policy`` is a callable (M, B, ...) → (M, B) or an ensemble with ``act`` and ``select(indices)``. At most
        ``max_envs`` envs exist at once: models (and, if one model's episodes exceed the bound, episodes) are
        evaluated in slices; episode r keeps its initial state and ε draws in every slice, so the returns are the
        same as in one vector env."""
        episode_ids = np.arange(self.episodes) if episodes is None else np.asarray(episodes, dtype=np.int64)
        act = policy.act if hasattr(policy, "act") else policy
        budget = self.max_envs or num_models * len(episode_ids)
        if num_models * len(episode_ids) <= budget:
            return self._evaluate(act, num_models, episode_ids)
        out = np.zeros((num_models, len(episode_ids)))
        per_slice = max(1, budget // len(episode_ids))
        for lo in range(0, num_models, per_slice):
            hi = min(lo + per_slice, num_models)
            sub = _model_subset(policy, lo, hi, num_models)
            for start in range(0, len(episode_ids), budget):
                part = slice(start, start + budget)
                out[lo:hi, part] = self._evaluate(sub, hi - lo, episode_ids[part])
        return out

    def _evaluate(self, policy: Policy, num_models: int, episode_ids: np.ndarray) -> np.ndarray:
        """Returns (M, R) of ``num_models`` policies on ``episode_ids``, all in one vector env."""
        runs = len(episode_ids)
        episode_index = np.tile(episode_ids, num_models)
        env, obs = self._make(num_models * runs, episode_index)
        totals = np.zeros(num_models * runs, dtype=np.float64)
        active = np.ones(num_models * runs, dtype=bool)
        try:
            for t in range(self.horizon):
                batch = np.asarray(obs).reshape(num_models, runs, *np.shape(obs)[1:])
                actions = np.asarray(policy(batch)).reshape(-1).astype(np.int64)
                if self.epsilon > 0:
                    explore = self.uniforms[episode_index, t] < self.epsilon
                    actions = np.where(explore, self.random_actions[episode_index, t], actions)
                obs, reward, terminated, truncated, _ = env.step(actions)
                totals += np.where(active, reward, 0.0)
                active &= ~(np.asarray(terminated) | np.asarray(truncated))
                if not active.any():
                    break
        finally:
            env.close()
        return totals.reshape(num_models, runs)

    def mean_returns(self, policy: Policy, num_models: int) -> np.ndarray:
        """Coefficient R̄_i: mean return over the common episodes, (M,)."""
        return self.evaluate(policy, num_models).mean(axis=1)


def _model_subset(policy: Policy | Any, lo: int, hi: int, num_models: int) -> Policy:
    """A policy for models ``lo..hi-1``: ``policy.select`` when the ensemble has it, else the full callable on
    observations padded to all ``num_models`` models (rows outside the slice repeat the slice's first row)."""
    if hasattr(policy, "select"):
        return policy.select(list(range(lo, hi))).act

    def act(obs: np.ndarray) -> np.ndarray:
        full = np.repeat(obs[:1], num_models, axis=0)
        full[lo:hi] = obs
        return np.asarray(policy(full))[lo:hi]

    return act


def evaluate_naive(act: Callable[[np.ndarray], int], env_id: str, episodes: int, seed: int = 0) -> np.ndarray:
    """A plain single-env loop, one episode at a time (for the benchmark's information only)."""
    env = gym.make(env_id)
    returns = []
    try:
        for r in range(episodes):
            obs, _ = env.reset(seed=seed + r)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(int(act(obs)))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return np.asarray(returns)
