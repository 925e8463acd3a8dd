"""The paper's Atari setup (spec §2.12): Nature-DQN CNN behaviour cloning on 4×84×84 uint8 stacks.

``make_atari_env`` needs ``pip install 'r2rise[atari]'`` (ale-py, whose wheels ship the ROMs, and opencv) and
raises a one-line ``ImportError`` otherwise; ``envs.make_env`` routes Atari ids here for recording, training and
evaluation.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state

# rows blanked by T-REX's ``mask_score``: (top rows, bottom rows)
SCORE_ROWS = {"breakout": (10, 0), "spaceinvaders": (10, 0), "pong": (10, 0), "beamrider": (16, 11)}


class NatureCNN(nn.Module):
    """Nature-DQN CNN: conv 8×8/4 → 32, conv 4×4/2 → 64, conv 3×3/1 → 64, fc 512, ReLU, ``num_actions`` logits.

    Input: (B, 4, 84, 84) uint8 or float in [0, 255]; scaled by 1/255 inside.
    """

    def __init__(self, num_actions: int, in_channels: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, num_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs.float() / 255.0))


class CNNEnsemble(nn.Module):
    """M Nature CNNs evaluated at once with ``torch.func.vmap`` over stacked parameters (no cross-model ops)."""

    def __init__(self, models: list[NatureCNN]) -> None:
        super().__init__()
        params, buffers = stack_module_state(models)
        self.params = nn.ParameterDict({k.replace(".", "__"): nn.Parameter(v) for k, v in params.items()})
        self.buffers_ = buffers
        self.template = [models[0]]  # kept out of the module tree: a stateless skeleton for functional_call

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (M, B, 4, 84, 84) → logits (M, B, A)."""
        params = {k.replace("__", "."): v for k, v in self.params.items()}

        def one(p: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.template[0], (p, {}), (x,))

        return torch.vmap(one)(params, obs)


def mask_score(obs: np.ndarray, game: str) -> np.ndarray:
    """Blank the score/lives area (T-REX ``mask_score``) in (..., 84, 84) frames: a copy with those rows set to 0."""
    key = game.lower().replace("noframeskip-v4", "").replace("-", "")
    if key not in SCORE_ROWS:
        return obs.copy()
    top, bottom = SCORE_ROWS[key]
    out = obs.copy()
    out[..., :top, :] = 0
    if bottom:
        out[..., -bottom:, :] = 0
    return out


def make_atari_env(
    env_id: str = "BreakoutNoFrameskip-v4", seed: int = 0, max_episode_steps: int | None = None
):
    """gymnasium Atari env with the paper-code preprocessing (84×84 grey, frame-skip 4, 4 stacked frames); an
    optional time limit in agent steps. Needs ``r2rise[atari]`` (ale-py ≥ 0.9 ships the ROMs; opencv for the
    resize)."""
    try:
        import ale_py
    except ImportError as err:
        raise ImportError("Atari needs ale-py: pip install 'r2rise[atari]'") from err
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    env = gym.make(env_id)
    env = AtariPreprocessing(
        env, frame_skip=4, screen_size=84, grayscale_obs=True, terminal_on_life_loss=False
    )
    env = FrameStackObservation(env, 4)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    env.reset(seed=seed)
    return env
