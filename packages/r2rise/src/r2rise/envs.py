"""Environments and hand-written experts (spec §2.9).

Each expert maps one observation (a 1-D numpy array) to a discrete action id of the env's own action space.
``load_demonstrator("module:callable")`` is the hook for any other (e.g. learned) expert.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from paperlab_core.errors import ConfigError

Expert = Callable[[np.ndarray], int]

CLASSIC_ENVS = ("CartPole-v1", "MountainCar-v0", "Acrobot-v1")


def cartpole_expert(obs: np.ndarray) -> int:
    """a = 1[0.1·x + 0.5·ẋ + 10·θ + 2·θ̇ > 0] (500/500 on CartPole-v1)."""
    x, x_dot, theta, theta_dot = (float(v) for v in obs[:4])
    return int(0.1 * x + 0.5 * x_dot + 10.0 * theta + 2.0 * theta_dot > 0.0)


def mountaincar_expert(obs: np.ndarray) -> int:
    """Push with the velocity: a = 2 if v ≥ 0 else 0 (never uses action 1)."""
    return 2 if float(obs[1]) >= 0.0 else 0


def acrobot_expert(obs: np.ndarray) -> int:
    """a = 2 if θ̇₂ > 0 else 0 (obs[5]; never uses action 1)."""
    return 2 if float(obs[5]) > 0.0 else 0


EXPERTS: dict[str, Expert] = {
    "CartPole-v1": cartpole_expert,
    "MountainCar-v0": mountaincar_expert,
    "Acrobot-v1": acrobot_expert,
}


def is_atari(env_id: str) -> bool:
    """Atari ids as the paper uses them (``BreakoutNoFrameskip-v4``) or ALE's own (``ALE/Breakout-v5``)."""
    return "NoFrameskip" in env_id or env_id.startswith("ALE/")


def check_env_id(env_id: str) -> None:
    """Raise a one-line ``ConfigError`` (a ``ValueError``) when ``env_id`` is not a registered gymnasium env (Atari ids register
    ale-py's envs on first use; ale-py ≥ 0.9 wheels ship the ROMs)."""
    if env_id not in gym.registry and is_atari(env_id):
        try:
            import ale_py
        except ImportError as err:
            raise ConfigError(f"env {env_id!r} needs ale-py: pip install 'r2rise[atari]'") from err
        gym.register_envs(ale_py)
    if env_id not in gym.registry:
        known = ", ".join(CLASSIC_ENVS)
        raise ConfigError(f"unknown env {env_id!r}: not registered in gymnasium (classic control: {known})")


def make_env(env_id: str, max_episode_steps: int | None = None) -> gym.Env:
    """One env as every part of the package sees it: ``gym.make`` for classic control, the paper-code Atari
    preprocessing (``atari.make_atari_env``: 84×84 grey, frame-skip 4, 4-frame stack) for Atari ids.
    ``max_episode_steps`` counts agent steps (after frame skipping)."""
    check_env_id(env_id)
    if is_atari(env_id):
        from r2rise.atari import make_atari_env

        return make_atari_env(env_id, max_episode_steps=max_episode_steps)
    return gym.make(env_id, max_episode_steps=max_episode_steps)


def env_spaces(env_id: str) -> tuple[tuple[int, ...], int]:
    """Observation shape and number of discrete actions of ``env_id``."""
    env = make_env(env_id)
    try:
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise ConfigError(f"env {env_id!r}: R2RISE's learners need a Discrete action space")
        return tuple(env.observation_space.shape or ()), int(env.action_space.n)
    finally:
        env.close()


def load_demonstrator(spec: str) -> Expert:
    """Load a demonstrator ``"package.module:callable"`` (the learned-expert hook) or a built-in env name."""
    if spec in EXPERTS:
        return EXPERTS[spec]
    if ":" not in spec:
        raise ConfigError(f"demonstrator {spec!r}: expected 'module:callable' or one of {sorted(EXPERTS)}")
    module_name, attr = spec.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"demonstrator {spec!r}: cannot import {module_name} ({err})") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise ConfigError(f"demonstrator {spec!r}: {attr!r} is not a callable in {module_name}")
    return func


def expert_for(env_id: str, demonstrator: str | None = None) -> Expert:
    """The hand-written expert of ``env_id`` or the user's ``demonstrator``."""
    check_env_id(env_id)
    if demonstrator:
        return load_demonstrator(demonstrator)
    if env_id not in EXPERTS:
        raise ConfigError(
            f"env {env_id!r} has no hand-written expert; pass a demonstrator 'module:callable' "
            f"(built-in experts: {sorted(EXPERTS)})"
        )
    return EXPERTS[env_id]


def run_expert_episode(env_id: str, expert: Expert, seed: int, max_steps: int | None = None) -> float:
    """Return of one greedy expert episode from ``env.reset(seed=seed)``."""
    env = make_env(env_id)
    try:
        obs, _ = env.reset(seed=seed)
        total, steps = 0.0, 0
        while True:
            obs, reward, terminated, truncated, _ = env.step(expert(obs))
            total += float(reward)
            steps += 1
            if terminated or truncated or (max_steps is not None and steps >= max_steps):
                return total
    finally:
        env.close()
