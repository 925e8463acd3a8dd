"""Finite-horizon tabular MDPs: exact conversion of gymnasium toy-text envs and the custom envs of spec §2.8.

Every environment is a :class:`TabularMDP` holding the exact model ``P[s, a, s']``, the (rescaled) transition
reward ``r[s, a, s']`` in [0, 1] and the initial distribution ``mu``. Gymnasium envs get one extra absorbing state
``s_⊥`` (the last index) that every ``terminated=True`` transition is routed to; ``s_⊥`` self-loops with the
absorbing reward 0 in original units. Rewards are mapped affinely, ``r' = (r - r_lo) / (r_hi - r_lo)``, with
``[r_lo, r_hi]`` spanning every transition reward *and* the absorbing reward 0 (spec §8, the CliffWalking pitfall),
so with a fixed horizon ``V' = (V - H r_lo) / (r_hi - r_lo)`` and optimal policies are unchanged.

gymnasium is imported lazily so that the custom envs work without it (the GPU machine lacks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paperlab_core.errors import ConfigError


@dataclass
class TabularMDP:
    """An exact tabular MDP with transition rewards; see the module docstring for the conventions."""

    name: str
    P: np.ndarray  # (S, A, S) float64, rows sum to 1
    r: np.ndarray  # (S, A, S) float64 rescaled transition rewards in [0, 1]
    mu: np.ndarray  # (S,) initial-state distribution
    horizon: int  # default H
    r_lo: float = 0.0
    r_hi: float = 1.0
    absorbing: int | None = None  # index of s_⊥ for converted gymnasium envs
    gym_id: str | None = None
    gym_kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None

    @property
    def S(self) -> int:
        return self.P.shape[0]

    @property
    def A(self) -> int:
        return self.P.shape[1]

    @property
    def R(self) -> np.ndarray:
        """Expected reward R(s, a) = Σ_s' P(s'|s,a) r(s,a,s') under the true model."""
        return np.einsum("ijk,ijk->ij", self.P, self.r)

    def rescale_value(self, value: float | np.ndarray, horizon: int) -> float | np.ndarray:
        """Map a value in original reward units to rescaled units: V' = (V − H r_lo)/(r_hi − r_lo)."""
        return (value - horizon * self.r_lo) / (self.r_hi - self.r_lo)

    def rescale_reward(self, reward: float) -> float:
        return (reward - self.r_lo) / (self.r_hi - self.r_lo)

    def validate(self) -> None:
        """Check shapes and that every row of P and mu is a probability vector."""
        S, A = self.S, self.A
        if self.P.shape != (S, A, S) or self.r.shape != (S, A, S) or self.mu.shape != (S,):
            raise ValueError(
                f"{self.name}: inconsistent shapes P{self.P.shape} r{self.r.shape} mu{self.mu.shape}"
            )
        if np.any(self.P < 0) or not np.allclose(self.P.sum(-1), 1.0, atol=1e-12):
            raise ValueError(f"{self.name}: rows of P must be probability vectors")
        if not np.isclose(self.mu.sum(), 1.0, atol=1e-12):
            raise ValueError(f"{self.name}: mu must sum to 1")
        if self.r.min() < -1e-12 or self.r.max() > 1 + 1e-12:
            raise ValueError(f"{self.name}: rescaled rewards must lie in [0, 1]")


# ----------------------------------------------------------------------------------------------- gymnasium


GYM_IDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "frozenlake": (("FrozenLake-v1",), {}),
    "frozenlake8x8": (("FrozenLake8x8-v1",), {}),
    "cliffwalking": (("CliffWalking-v1", "CliffWalking-v0"), {}),
    "taxi": (("Taxi-v4", "Taxi-v3"), {}),
}


def make_gym(env_id: str, **kwargs: Any) -> Any:
    """``gymnasium.make`` with a clear error for unknown ids."""
    try:
        import gymnasium as gym
    except ImportError as err:  # pragma: no cover - gymnasium is a dependency
        raise ImportError("gymnasium is required for the toy-text envs (pip install gymnasium)") from err
    try:
        return gym.make(env_id, **kwargs)
    except gym.error.Error as err:
        raise ConfigError(f"unknown gymnasium env id {env_id!r}: {err}") from err


def resolve_gym_id(candidates: tuple[str, ...]) -> str:
    """The first registered id among version-tolerant candidates (``Taxi-v4`` then ``Taxi-v3``, ...)."""
    import gymnasium as gym

    for candidate in candidates:
        if candidate in gym.registry:
            return candidate
    raise ConfigError(f"none of {candidates} is registered in this gymnasium ({gym.__version__})")


def from_gymnasium(env_id: str, horizon: int = 20, name: str | None = None, **kwargs: Any) -> TabularMDP:
    """Convert a gymnasium toy-text env that exposes ``env.unwrapped.P`` into a :class:`TabularMDP`.

    Duplicate ``(prob, s')`` entries are aggregated; transitions with ``terminated=True`` go to the added
    absorbing state; if one ``(s, a, s')`` carries several rewards their probability-weighted mean is stored.
    """
    env = make_gym(env_id, **kwargs)
    unwrapped = env.unwrapped
    table = getattr(unwrapped, "P", None)
    if not isinstance(table, dict):
        raise ConfigError(
            f"{env_id} does not expose a transition model env.unwrapped.P; exact regret needs the exact model P "
            "(supported: FrozenLake, CliffWalking, Taxi and the custom envs)"
        )
    S0 = int(unwrapped.observation_space.n)
    A = int(unwrapped.action_space.n)
    S = S0 + 1
    bottom = S0
    P = np.zeros((S, A, S))
    reward_mass = np.zeros((S, A, S))
    for s in range(S0):
        for a in range(A):
            for prob, s_next, reward, terminated in table[s][a]:
                target = bottom if terminated else int(s_next)
                P[s, a, target] += prob
                reward_mass[s, a, target] += prob * float(reward)
    P[bottom, :, bottom] = 1.0
    r_raw = np.divide(reward_mass, P, out=np.zeros_like(P), where=P > 0)
    used = P > 0
    r_lo = min(float(r_raw[used].min()), 0.0)
    r_hi = max(float(r_raw[used].max()), 0.0)
    if r_hi == r_lo:
        r_hi = r_lo + 1.0
    P = P / P.sum(-1, keepdims=True)
    r = np.where(used, (r_raw - r_lo) / (r_hi - r_lo), 0.0)
    mu = np.zeros(S)
    isd = getattr(unwrapped, "initial_state_distrib", None)
    if isd is None:
        raise ConfigError(f"{env_id}: no initial_state_distrib; cannot compute V*(mu) exactly")
    mu[:S0] = np.asarray(isd, dtype=np.float64)
    mu /= mu.sum()
    spec = env.spec
    mdp = TabularMDP(
        name=name or env_id,
        P=P,
        r=r,
        mu=mu,
        horizon=horizon,
        r_lo=r_lo,
        r_hi=r_hi,
        absorbing=bottom,
        gym_id=env_id,
        gym_kwargs=dict(kwargs),
        max_episode_steps=spec.max_episode_steps if spec is not None else None,
    )
    env.close()
    mdp.validate()
    return mdp


# ----------------------------------------------------------------------------------------------- custom envs


def riverswim(n_states: int = 6, horizon: int = 20) -> TabularMDP:
    """TabulaRL ``make_riverSwim``: action 0 = left, 1 = right, start state 0 (spec §2.8)."""
    if n_states < 3:
        raise ConfigError("riverswim needs n_states >= 3")
    S, A = n_states, 2
    P = np.zeros((S, A, S))
    R = np.zeros((S, A))
    for s in range(S):
        P[s, 0, max(0, s - 1)] = 1.0
    for s in range(1, S - 1):
        P[s, 1, s + 1] = 0.35
        P[s, 1, s] = 0.6
        P[s, 1, s - 1] = 0.05
    P[0, 1, 0] = 0.4
    P[0, 1, 1] = 0.6
    P[S - 1, 1, S - 1] = 0.6
    P[S - 1, 1, S - 2] = 0.4
    R[0, 0] = 0.005
    R[S - 1, 1] = 1.0
    mu = np.zeros(S)
    mu[0] = 1.0
    return _with_state_action_reward("riverswim", P, R, mu, horizon)


def _with_state_action_reward(
    name: str, P: np.ndarray, R: np.ndarray, mu: np.ndarray, horizon: int
) -> TabularMDP:
    r = np.broadcast_to(R[:, :, None], P.shape).copy()
    mdp = TabularMDP(name=name, P=P, r=r, mu=mu, horizon=horizon)
    mdp.validate()
    return mdp


def chain_det(n_states: int = 10, horizon: int | None = None) -> TabularMDP:
    """TabulaRL deterministic chain: left → max(0, s−1), right → min(N−1, s+1); reward 1 at (N−1, right)."""
    S = n_states
    P = np.zeros((S, 2, S))
    for s in range(S):
        P[s, 0, max(0, s - 1)] = 1.0
        P[s, 1, min(S - 1, s + 1)] = 1.0
    R = np.zeros((S, 2))
    R[S - 1, 1] = 1.0
    mu = np.eye(S)[0]
    return _with_state_action_reward("chain_det", P, R, mu, horizon or S)


def chain_stoch(n_states: int = 10, horizon: int | None = None) -> TabularMDP:
    """TabulaRL stochastic chain: right succeeds w.p. 1 − 1/N, else moves left; H = N by default."""
    S = n_states
    P = np.zeros((S, 2, S))
    for s in range(S):
        P[s, 0, max(0, s - 1)] = 1.0
        P[s, 1, min(S - 1, s + 1)] += 1.0 - 1.0 / S
        P[s, 1, max(0, s - 1)] += 1.0 / S
    R = np.zeros((S, 2))
    R[S - 1, 1] = 1.0
    mu = np.eye(S)[0]
    return _with_state_action_reward("chain_stoch", P, R, mu, horizon or S)


def chain_bootdqn(n_states: int = 6, horizon: int = 15) -> TabularMDP:
    """TabulaRL Bootstrapped-DQN chain: right moves ±1 w.p. ½ each; reward 0.01 at (0, left), 1 at (N−1, right)."""
    S = n_states
    P = np.zeros((S, 2, S))
    for s in range(S):
        P[s, 0, max(0, s - 1)] = 1.0
        P[s, 1, min(S - 1, s + 1)] += 0.5
        P[s, 1, max(0, s - 1)] += 0.5
    R = np.zeros((S, 2))
    R[0, 0] = 0.01
    R[S - 1, 1] = 1.0
    mu = np.eye(S)[0]
    return _with_state_action_reward("chain_bootdqn", P, R, mu, horizon)


def deep_sea(size: int = 10, mapping_seed: int = 0, stochastic: bool = False) -> TabularMDP:
    """bsuite DeepSea: an N×N grid walked down one row per step, H = N (spec §2.8).

    State index = row·N + column for rows 0..N−1, plus one final absorbing state (row N). A seeded per-cell
    mapping decides which action is "right". Right costs 0.01/N and moves column+1; left moves column−1 (both
    clipped); "right" in the last column at the last row also pays +1. Rewards are rescaled from
    [−0.01/N, 1] to [0, 1] (the absorbing reward 0 lies inside that range).
    """
    N = size
    S = N * N + 1
    end = N * N
    rng = np.random.default_rng(mapping_seed)
    right_action = rng.integers(0, 2, size=(N, N))
    P = np.zeros((S, 2, S))
    raw = np.zeros((S, 2))
    cost = 0.01 / N
    p_success = 1.0 - 1.0 / N if stochastic else 1.0
    for row in range(N):
        for col in range(N):
            s = row * N + col
            for a in range(2):
                is_right = a == right_action[row, col]

                def target(c: int, row: int = row) -> int:
                    return end if row == N - 1 else (row + 1) * N + c

                if is_right:
                    raw[s, a] = -cost + (1.0 if col == N - 1 and row == N - 1 else 0.0)
                    P[s, a, target(min(N - 1, col + 1))] += p_success
                    P[s, a, target(max(0, col - 1))] += 1.0 - p_success
                else:
                    P[s, a, target(max(0, col - 1))] += 1.0
    P[end, :, end] = 1.0
    r_lo, r_hi = -cost, 1.0
    R = (raw - r_lo) / (r_hi - r_lo)
    R[end] = (0.0 - r_lo) / (r_hi - r_lo)
    mu = np.zeros(S)
    mu[0] = 1.0
    mdp = _with_state_action_reward("deep_sea", P, R, mu, N)
    mdp.r_lo, mdp.r_hi, mdp.absorbing = r_lo, r_hi, end
    return mdp


CUSTOM: dict[str, Callable[..., TabularMDP]] = {
    "riverswim": riverswim,
    "deep_sea": deep_sea,
    "deepsea": deep_sea,
    "chain_det": chain_det,
    "chain_stoch": chain_stoch,
    "chain_bootdqn": chain_bootdqn,
}

ENV_NAMES = ("frozenlake", "frozenlake8x8", "cliffwalking", "taxi", *CUSTOM)


def make_env(name: str, horizon: int | None = None, **kwargs: Any) -> TabularMDP:
    """Build an env by short name (``riverswim``, ``frozenlake``, ``taxi``, ...) or by gymnasium id.

    Raises :class:`~paperlab_core.errors.ConfigError` (a ``ValueError``) naming the supported envs for unknown
    names, and a clear message for gymnasium envs that do not expose ``P``.
    """
    key = name.lower()
    if key in CUSTOM:
        mdp = CUSTOM[key](**kwargs)
        if horizon is not None:
            mdp.horizon = horizon
        return mdp
    if key in GYM_IDS:
        candidates, defaults = GYM_IDS[key]
        return from_gymnasium(
            resolve_gym_id(candidates), horizon=horizon or 20, name=key, **defaults, **kwargs
        )
    if "-v" in name:
        return from_gymnasium(name, horizon=horizon or 20, **kwargs)
    raise ConfigError(f"unknown env {name!r} (supported: {', '.join(ENV_NAMES)} or a toy-text gymnasium id)")


# ----------------------------------------------------------------------------------------------- interaction


class Simulator:
    """Samples episodes of a :class:`TabularMDP`.

    Gymnasium-derived envs are stepped through the real env (``env.unwrapped``, so that the registered time
    limit does not truncate; reset with the seed once, then the env's own RNG continues). After termination
    the episode is padded with absorbing steps without calling the env. Custom envs sample their own model.
    Rewards returned are in rescaled units.
    """

    def __init__(self, mdp: TabularMDP, seed: int, use_gym: bool = True) -> None:
        self.mdp = mdp
        self.rng = np.random.default_rng(seed)
        self.env: Any = None
        self._seed: int | None = seed
        self._cdf = np.cumsum(mdp.P, axis=-1)
        self._mu_cdf = np.cumsum(mdp.mu)
        if use_gym and mdp.gym_id is not None:
            self.env = make_gym(mdp.gym_id, **mdp.gym_kwargs).unwrapped
        self.state = 0

    def reset(self) -> int:
        if self.env is not None:
            obs, _ = self.env.reset(seed=self._seed)
            self._seed = None
            self.state = int(obs)
        else:
            self.state = int(
                min(np.searchsorted(self._mu_cdf, self.rng.random(), side="right"), self.mdp.S - 1)
            )
        return self.state

    def step(self, action: int) -> tuple[int, float]:
        s = self.state
        mdp = self.mdp
        if self.env is not None and s != mdp.absorbing:
            obs, reward, terminated, _, _ = self.env.step(action)
            s_next = mdp.absorbing if terminated else int(obs)
            reward = mdp.rescale_reward(float(reward))
        else:
            u = self.rng.random()
            s_next = int(min(np.searchsorted(self._cdf[s, action], u, side="right"), mdp.S - 1))
            reward = float(mdp.r[s, action, s_next])
        self.state = s_next
        return s_next, reward
