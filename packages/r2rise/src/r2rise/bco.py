"""``bco_mlp``: behavioural cloning from observation, BCO(0) (Torabi, Warnell & Stone, IJCAI 2018), batched.

Imitation from observation, a learner family that never reads the demonstrators' action labels:

1. the learner explores the env with a uniformly random policy (``EXPLORE_STEPS`` transitions, seeded);
2. an inverse dynamics model (IDM) p(a | s, s') — a ``bc_mlp`` on the input (s, s' − s) — is fitted to them;
3. each demonstration transition (s_t, s_{t+1}) gets the IDM's action as its label;
4. the policy is a ``bc_mlp`` trained on the kept frames with those inferred labels (the ensemble of
   ``learners.fit_ensemble``).

Steps 1–2 do not depend on the demonstrations or the mask, so one IDM (seeded by the run's seed) serves every
retraining: fitting it once per mask would only change its initialisation. BCO(α > 0), which alternates policy
rollouts and IDM refits as in the official ``BCO.py``, is not implemented. A frame whose successor is not a valid
frame of the same demonstration (the last one) has no transition and is not used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from paperlab_core.errors import ConfigError
from r2rise.envs import make_env
from r2rise.learners import Ensemble, Normaliser, fit_ensemble

EXPLORE_STEPS = 5000
IDM_STEPS = 300
IDM_HIDDEN = 64


def explore(
    env_id: str, steps: int = EXPLORE_STEPS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``steps`` transitions (s, a, s') of a uniformly random policy, resetting at episode ends (seeded)."""
    rng = np.random.default_rng([seed, 4242])
    env = make_env(env_id)
    states, actions, nexts = [], [], []
    try:
        num_actions = int(env.action_space.n)
        obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
        while len(actions) < steps:
            action = int(rng.integers(num_actions))
            nxt, _, terminated, truncated, _ = env.step(action)
            states.append(np.asarray(obs, dtype=np.float64).reshape(-1))
            actions.append(action)
            nexts.append(np.asarray(nxt, dtype=np.float64).reshape(-1))
            obs = nxt
            if terminated or truncated:
                obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
    finally:
        env.close()
    return np.stack(states), np.asarray(actions, dtype=np.int64), np.stack(nexts)


def idm_inputs(states: np.ndarray, nexts: np.ndarray) -> np.ndarray:
    """The inverse dynamics model's input (s, s' − s), (F, 2d)."""
    flat, flat_next = states.reshape(len(states), -1), nexts.reshape(len(nexts), -1)
    return np.concatenate([flat, flat_next - flat], axis=1)


def fit_idm(env_id: str, num_actions: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> Ensemble:
    """The inverse dynamics model: a ``bc_mlp`` (hidden ``IDM_HIDDEN``) on exploration transitions, standardised
    inputs, full-batch Adam lr 1e-2 for ``IDM_STEPS`` steps."""
    states, actions, nexts = explore(env_id, EXPLORE_STEPS, seed)
    x = idm_inputs(states, nexts)
    return fit_ensemble(
        x, actions, np.ones((1, len(x))), num_actions, "bc_mlp", IDM_HIDDEN, 1e-2, IDM_STEPS, seed,
        [10**6], Normaliser.fit(x), dtype,
    )  # fmt: skip


def fit_bco_ensemble(
    obs: np.ndarray,
    next_obs: np.ndarray,
    has_next: np.ndarray,
    weights: np.ndarray,
    idm: Ensemble,
    num_actions: int,
    hidden: int = 32,
    lr: float = 1e-2,
    steps: int = 200,
    seed: int = 0,
    members: Sequence[int] | None = None,
    normaliser: Normaliser | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Ensemble:
    """BCO policies for M = len(weights) masks: the IDM labels every transition, then ``fit_ensemble`` trains one
    ``bc_mlp`` per mask on its kept transitions (the demonstrations' own labels are never read)."""
    inferred = idm.act(idm_inputs(obs, next_obs)[None])[0]
    used = np.asarray(weights) * np.asarray(has_next, dtype=np.float64)[None, :]
    if (used.sum(axis=1) == 0).any():
        raise ConfigError("a mask keeps no transition (s, s'): cannot fit bco_mlp")
    return fit_ensemble(
        obs.reshape(len(obs), -1), inferred, used, num_actions, "bc_mlp", hidden, lr, steps, seed, members,
        normaliser, dtype, device=device,
    )  # fmt: skip
