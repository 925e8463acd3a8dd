"""The paper's Atari setup (spec §2.12): Nature-DQN CNN behaviour cloning on 4×84×84 uint8 stacks.

``make_atari_env`` needs ``pip install 'r2rise[atari]'`` (ale-py, whose wheels ship the ROMs, and opencv) and
raises a one-line ``ConfigError`` otherwise; ``envs.make_env`` routes Atari ids here for recording, training and
evaluation.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn import functional as F

from paperlab_core.errors import ConfigError

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


def game_key(env_id: str) -> str:
    """The game's lower-case name: ``BreakoutNoFrameskip-v4`` and ``ALE/Breakout-v5`` → ``breakout``."""
    name = env_id.split("/")[-1]
    name = re.sub(r"-v\d+$", "", name)
    name = name.replace("NoFrameskip", "").replace("Deterministic", "")
    return name.replace("-", "").lower()


def mask_score(obs: np.ndarray, game: str) -> np.ndarray:
    """Blank the score/lives area (T-REX ``mask_score``) in (..., 84, 84) frames: a copy with those rows set to 0.

    ``game`` is an env id or a game name; games without an entry in ``SCORE_ROWS`` are returned unchanged."""
    key = game_key(game)
    if key not in SCORE_ROWS:
        return obs.copy()
    top, bottom = SCORE_ROWS[key]
    out = obs.copy()
    out[..., :top, :] = 0
    if bottom:
        out[..., -bottom:, :] = 0
    return out


class MaskScore(gym.ObservationWrapper):
    """Blanks the score/lives rows of every observation (``mask_score``), so recorded demonstrations, training and
    evaluation all see the same blanked frames."""

    def __init__(self, env: gym.Env, game: str) -> None:
        super().__init__(env)
        self.game = game

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return mask_score(np.asarray(observation), self.game)


class FireReset(gym.Wrapper):
    """FIRE on reset (OpenAI baselines' ``FireResetEnv``, part of the paper code's ``wrap_deepmind``): after every
    reset, take action 1 (FIRE) then action 2, resetting again (without a seed) if either step ends the episode;
    their rewards are not counted. Games such as Breakout otherwise wait for FIRE before serving the ball."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(f"FireReset needs FIRE as action 1, got {meanings}")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        return obs, info


def has_fire(env: gym.Env) -> bool:
    """Whether action 1 of an ALE env is FIRE (where baselines applies ``FireResetEnv``)."""
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def make_atari_env(
    env_id: str = "BreakoutNoFrameskip-v4",
    seed: int = 0,
    max_episode_steps: int | None = None,
    fire_reset: bool = True,
    blank_score: bool = True,
) -> gym.Env:
    """gymnasium Atari env with the paper-code preprocessing: 84×84 grey, frame-skip 4 (with up to 30 no-ops on
    reset), no life-loss terminal, FIRE on reset for games that need it (``FireReset``), 4 stacked frames, and the
    score/lives rows blanked (``MaskScore``: T-REX ``mask_score``); an optional time limit in agent steps. Needs
    ``r2rise[atari]`` (ale-py ≥ 0.9 ships the ROMs; opencv for the resize)."""
    try:
        import ale_py
    except ImportError:
        raise ConfigError("Atari needs ale-py: pip install 'r2rise[atari]'") from None
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    env = gym.make(env_id)
    env = AtariPreprocessing(
        env, frame_skip=4, screen_size=84, grayscale_obs=True, terminal_on_life_loss=False
    )
    if fire_reset and has_fire(env):
        env = FireReset(env)
    env = FrameStackObservation(env, 4)
    if blank_score:
        env = MaskScore(env, env_id)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    env.reset(seed=seed)
    return env


def _member_generator(seed: int, member: int) -> torch.Generator:
    state = np.random.SeedSequence([int(seed), int(member), 84]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


class CNNPolicies:
    """M trained Nature CNNs; ``act`` maps (M, B, 4, 84, 84) observations to greedy actions (M, B)."""

    def __init__(self, ensemble: CNNEnsemble, eval_batch: int = 256) -> None:
        self.ensemble = ensemble.eval()
        self.eval_batch = eval_batch

    @property
    def size(self) -> int:
        return int(next(iter(self.ensemble.params.values())).shape[0])

    def select(self, index: int | list[int]) -> CNNPolicies:
        """The policies of the given models (parameters indexed, the ensemble itself untouched)."""
        idx = [index] if isinstance(index, int) else list(index)
        chosen = CNNEnsemble.__new__(CNNEnsemble)
        nn.Module.__init__(chosen)
        chosen.params = nn.ParameterDict(
            {k: nn.Parameter(v.detach()[idx], requires_grad=False) for k, v in self.ensemble.params.items()}
        )
        chosen.buffers_ = self.ensemble.buffers_
        chosen.template = self.ensemble.template
        return CNNPolicies(chosen.eval(), self.eval_batch)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        device = next(iter(self.ensemble.params.values())).device
        x = torch.as_tensor(np.asarray(obs), device=device)
        return self.ensemble(x).argmax(dim=-1).cpu().numpy()


def fit_cnn_ensemble(
    obs: np.ndarray,
    actions: np.ndarray,
    weights: np.ndarray,
    num_actions: int,
    lr: float = 1e-3,
    max_updates: int = 15_000,
    batch_size: int = 32,
    seed: int = 0,
    members: list[int] | None = None,
    val_fraction: float = 0.1,
    val_every: int = 500,
    patience: int = 5,
    device: str | torch.device = "cpu",
) -> CNNPolicies:
    """The paper-code BC regime (spec §2.5 ``bc_cnn``) for M models at once, each on its kept frames.

    Per model m (its own generator from (seed, members[m])): the kept frames are shuffled and split 90/10 into
    train/validation; each update draws a minibatch of ``batch_size`` train frames (with replacement) and takes one
    Adam step (lr 1e-3, no weight decay) on the mean cross-entropy; every ``val_every`` updates the summed validation
    cross-entropy is computed, the best parameters are kept, and a model stops after more than ``patience``
    consecutive non-improvements (its later updates are masked out). Returns the best parameters of every model.
    Models never interact (``torch.func.vmap`` over stacked parameters; Adam is elementwise), so a model's result
    does not depend on which other models share the call.
    """
    weights = np.asarray(weights) > 0
    num_models = len(weights)
    members = list(range(num_models)) if members is None else [int(m) for m in members]
    if weights.ndim != 2 or weights.shape[1] != len(obs):
        raise ValueError(f"weights must have shape (M, F={len(obs)}), got {weights.shape}")
    if (weights.sum(axis=1) < 2).any():
        raise ConfigError("every model needs at least 2 kept frames (one for training, one for validation)")
    device = torch.device(device)
    frames = torch.as_tensor(np.asarray(obs), device=device)
    labels = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=device)
    gens = [_member_generator(seed, m) for m in members]
    models = []
    for gen in gens:
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        models.append(NatureCNN(num_actions, frames.shape[1]))
    ensemble = CNNEnsemble(models).to(device)
    train_lists, val_lists = [], []
    for m, gen in enumerate(gens):
        kept = torch.as_tensor(np.flatnonzero(weights[m]))
        kept = kept[torch.randperm(len(kept), generator=gen)]
        n_val = max(1, round(val_fraction * len(kept)))
        val_lists.append(kept[:n_val])
        train_lists.append(kept[n_val:])
    optimiser = torch.optim.Adam(ensemble.parameters(), lr=lr)
    best = {k: v.detach().clone() for k, v in ensemble.params.items()}
    best_loss = torch.full((num_models,), float("inf"))
    strikes = torch.zeros(num_models, dtype=torch.long)
    active = torch.ones(num_models, dtype=torch.bool)
    for update in range(1, max_updates + 1):
        index = torch.stack(
            [
                t[torch.randint(len(t), (batch_size,), generator=g)]
                for t, g in zip(train_lists, gens, strict=True)
            ]
        ).to(device)
        logits = ensemble(frames[index])  # (M, B, A)
        ce = F.cross_entropy(logits.flatten(0, 1), labels[index].flatten(), reduction="none").view(
            num_models, -1
        )
        loss = (ce.mean(dim=1) * active.to(device)).sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if update % val_every == 0 or update == max_updates:
            val = _summed_val_loss(ensemble, frames, labels, val_lists).cpu()
            improved = active & (val < best_loss)
            for key, value in ensemble.params.items():
                best[key][improved.to(device)] = value.detach()[improved.to(device)]
            best_loss = torch.where(improved, val, best_loss)
            strikes = torch.where(improved, torch.zeros_like(strikes), strikes + active.long())
            active &= strikes <= patience
            if not active.any():
                break
    with torch.no_grad():
        for key, value in ensemble.params.items():
            value.copy_(best[key])
    return CNNPolicies(ensemble)


@torch.no_grad()
def _summed_val_loss(
    ensemble: CNNEnsemble,
    frames: torch.Tensor,
    labels: torch.Tensor,
    val_lists: list[torch.Tensor],
    batch: int = 10,
) -> torch.Tensor:
    """Σ over each model's validation frames of the cross-entropy, in minibatches of 10 (paper code), (M,)."""
    width = max(len(v) for v in val_lists)
    device = frames.device
    index = torch.stack([torch.cat([v, v[:1].repeat(width - len(v))]) for v in val_lists]).to(device)
    real = torch.stack([torch.arange(width) < len(v) for v in val_lists]).to(device)
    total = torch.zeros(len(val_lists), device=device)
    for start in range(0, width, batch):
        part = index[:, start : start + batch]
        logits = ensemble(frames[part])
        ce = F.cross_entropy(logits.flatten(0, 1), labels[part].flatten(), reduction="none").view(
            len(part), -1
        )
        total += (ce * real[:, start : start + batch]).sum(dim=1)
    return total
