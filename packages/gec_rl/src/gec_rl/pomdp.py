"""Tabular POMDPs: the Tiger problem, forward-algorithm likelihoods and exact planning over histories (spec §2.5,
§2.8).

Conventions: ``T[a, s, s']`` transitions, ``Z[a, s', o]`` the observation emitted after taking ``a`` and landing
in ``s'``, ``R[s, a]`` the (rescaled) reward, ``mu0`` the initial distribution. At step h the agent picks a_h from
the history (a_1, o_1, …, a_{h−1}, o_{h−1}), the state moves s_h → s_{h+1} ~ T[a_h, s_h] and o_h ~ Z[a_h, s_{h+1}].
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

History = tuple[tuple[int, int], ...]


@dataclass
class TabularPOMDP:
    name: str
    T: np.ndarray  # (A, S, S)
    Z: np.ndarray  # (A, S, n_obs) observation probabilities
    R: np.ndarray  # (S, A) rescaled rewards in [0, 1]
    mu0: np.ndarray  # (S,)

    @property
    def S(self) -> int:
        return self.T.shape[1]

    @property
    def A(self) -> int:
        return self.T.shape[0]

    @property
    def n_obs(self) -> int:
        return self.Z.shape[2]


def tiger(listen_accuracy: float = 0.85) -> TabularPOMDP:
    """Tiger (Kaelbling, Littman & Cassandra 1998): states {tiger-left, tiger-right}, actions {listen,
    open-left, open-right}, observations {hear-left, hear-right}; rewards −1 / −100 / +10 rescaled by (r+100)/110.
    Opening a door resets the tiger uniformly and emits an uninformative observation."""
    S, A, n_obs = 2, 3, 2
    T = np.zeros((A, S, S))
    T[0] = np.eye(S)
    T[1] = T[2] = 0.5
    Z = np.zeros((A, S, n_obs))
    Z[0] = [[listen_accuracy, 1 - listen_accuracy], [1 - listen_accuracy, listen_accuracy]]
    Z[1] = Z[2] = 0.5
    raw = np.array([[-1.0, -100.0, 10.0], [-1.0, 10.0, -100.0]])
    return TabularPOMDP("tiger", T, Z, (raw + 100.0) / 110.0, np.full(S, 0.5))


def forward_log_likelihood(
    pomdp: TabularPOMDP, actions: np.ndarray, observations: np.ndarray, rewards: np.ndarray | None = None
) -> float:
    """log P_f(o_{1:H} | a_{1:H}) by the forward algorithm; with ``rewards`` the known reward function enters as
    an indicator factor 1[R(s_h, a_h) = r_h] (rewards reveal the state when a door is opened)."""
    alpha = pomdp.mu0.copy()
    log_norm = 0.0
    for h, (a, o) in enumerate(zip(actions, observations, strict=True)):
        if rewards is not None:
            alpha = alpha * np.isclose(pomdp.R[:, a], rewards[h])
        alpha = (alpha @ pomdp.T[a]) * pomdp.Z[a, :, o]
        total = alpha.sum()
        if total <= 0:
            return -np.inf
        log_norm += np.log(total)
        alpha = alpha / total
    return float(log_norm)


def brute_force_likelihood(
    pomdp: TabularPOMDP, actions: np.ndarray, observations: np.ndarray, rewards: np.ndarray | None = None
) -> float:
    """P_f(o_{1:H} | a_{1:H}) by enumerating every latent path s_1..s_{H+1} (the test reference)."""
    H = len(actions)
    total = 0.0
    for path in itertools.product(range(pomdp.S), repeat=H + 1):
        p = pomdp.mu0[path[0]]
        for h in range(H):
            a, o = actions[h], observations[h]
            if rewards is not None and not np.isclose(pomdp.R[path[h], a], rewards[h]):
                p = 0.0
                break
            p *= pomdp.T[a, path[h], path[h + 1]] * pomdp.Z[a, path[h + 1], o]
        total += p
    return float(total)


def plan_histories(pomdp: TabularPOMDP, H: int) -> tuple[float, dict[History, int]]:
    """Exact optimal value and policy over histories (feasible for H ≤ 4) by belief recursion."""
    policy: dict[History, int] = {}

    def value(belief: np.ndarray, history: History, steps_left: int) -> float:
        if steps_left == 0:
            return 0.0
        best, best_a = -np.inf, 0
        for a in range(pomdp.A):
            q = float(belief @ pomdp.R[:, a])
            predicted = belief @ pomdp.T[a]
            for o in range(pomdp.n_obs):
                joint = predicted * pomdp.Z[a, :, o]
                p_obs = joint.sum()
                if p_obs > 1e-15:
                    q += p_obs * value(joint / p_obs, (*history, (a, o)), steps_left - 1)
            if q > best + 1e-12:
                best, best_a = q, a
        policy[history] = best_a
        return best

    return value(pomdp.mu0, (), H), policy


def evaluate_history_policy(pomdp: TabularPOMDP, policy: dict[History, int], H: int) -> float:
    """Exact value of a deterministic history-dependent policy on the (true) POMDP."""

    def value(belief: np.ndarray, history: History, steps_left: int) -> float:
        if steps_left == 0:
            return 0.0
        a = policy.get(history, 0)
        q = float(belief @ pomdp.R[:, a])
        predicted = belief @ pomdp.T[a]
        for o in range(pomdp.n_obs):
            joint = predicted * pomdp.Z[a, :, o]
            p_obs = joint.sum()
            if p_obs > 1e-15:
                q += p_obs * value(joint / p_obs, (*history, (a, o)), steps_left - 1)
        return q

    return value(pomdp.mu0, (), H)


def sample_episode(
    pomdp: TabularPOMDP, policy: dict[History, int], H: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode under ``policy``: actions, observations and rewards (each of length H)."""
    s = int(rng.choice(pomdp.S, p=pomdp.mu0))
    history: History = ()
    actions, observations, rewards = [], [], []
    for _ in range(H):
        a = policy.get(history, 0)
        rewards.append(pomdp.R[s, a])
        s = int(rng.choice(pomdp.S, p=pomdp.T[a, s]))
        o = int(rng.choice(pomdp.n_obs, p=pomdp.Z[a, s]))
        actions.append(a)
        observations.append(o)
        history = (*history, (a, o))
    return np.array(actions), np.array(observations), np.array(rewards)


def ffbs(
    pomdp: TabularPOMDP,
    actions: np.ndarray,
    observations: np.ndarray,
    rewards: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Forward filtering, backward sampling of latent paths s_1..s_{H+1} for N trajectories at once.

    ``actions``, ``observations``, ``rewards`` are (N, H); the known rewards enter as indicators. Returns (N, H+1).
    """
    N, H = actions.shape
    S = pomdp.S
    filtered = np.empty((N, H + 1, S))
    alpha = np.broadcast_to(pomdp.mu0, (N, S)).copy()
    filtered[:, 0] = alpha
    for h in range(H):
        a, o = actions[:, h], observations[:, h]
        alpha = alpha * np.isclose(pomdp.R[:, a].T, rewards[:, h : h + 1])
        alpha = np.einsum("ns,nst->nt", alpha, pomdp.T[a]) * pomdp.Z[a, :, o]
        alpha /= np.maximum(alpha.sum(-1, keepdims=True), 1e-300)
        filtered[:, h + 1] = alpha
    path = np.empty((N, H + 1), dtype=np.int64)
    path[:, H] = _categorical(rng, filtered[:, H])
    for h in range(H - 1, -1, -1):
        a = actions[:, h]
        weights = (
            filtered[:, h]
            * pomdp.T[a, :, path[:, h + 1]]
            * np.isclose(pomdp.R[:, a].T, rewards[:, h : h + 1])
        )
        path[:, h] = _categorical(rng, weights / weights.sum(-1, keepdims=True))
    return path


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    u = rng.random((probs.shape[0], 1))
    return np.minimum((np.cumsum(probs, -1) < u).sum(-1), probs.shape[-1] - 1)


class OPSPomdp:
    """OPS on a tabular POMDP with known rewards (spec §2.7 `ops_pomdp`).

    Hypotheses (T, Z) with Dirichlet(α₀) priors (μ₀ and R known). The η = 1 posterior is sampled by Gibbs with
    FFBS of the latent states; M consecutive Gibbs states are SIR-reweighted by exp((η − 1)·loglik + γ_t·V_{1,f})
    and the chosen model's exact history policy (:func:`plan_histories`) is executed.
    """

    def __init__(
        self,
        truth: TabularPOMDP,
        H: int,
        rng: np.random.Generator,
        M: int = 4,
        eta: float = 1.0,
        gamma: float = 1.0,
        alpha0: float = 1.0,
        sweeps: int = 2,
    ) -> None:
        self.H, self.rng, self.M, self.eta, self.gamma, self.sweeps = H, rng, M, eta, gamma, sweeps
        self.alpha0 = alpha0
        self.R, self.mu0 = truth.R, truth.mu0
        self.A, self.S, self.n_obs = truth.A, truth.S, truth.n_obs
        self.model = self._draw(np.zeros((self.A, self.S, self.S)), np.zeros((self.A, self.S, self.n_obs)))
        self.episodes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _draw(self, trans_counts: np.ndarray, obs_counts: np.ndarray) -> TabularPOMDP:
        T = np.zeros_like(trans_counts)
        Z = np.zeros_like(obs_counts)
        for a in range(self.A):
            for s in range(self.S):
                T[a, s] = self.rng.dirichlet(self.alpha0 + trans_counts[a, s])
                Z[a, s] = self.rng.dirichlet(self.alpha0 + obs_counts[a, s])
        return TabularPOMDP("sample", T, Z, self.R, self.mu0)

    def gibbs_step(self) -> TabularPOMDP:
        trans_counts = np.zeros((self.A, self.S, self.S))
        obs_counts = np.zeros((self.A, self.S, self.n_obs))
        if self.episodes:
            acts, obs, rews = (np.stack(x) for x in zip(*self.episodes, strict=True))
            path = ffbs(self.model, acts, obs, rews, self.rng)
            np.add.at(trans_counts, (acts, path[:, :-1], path[:, 1:]), 1.0)
            np.add.at(obs_counts, (acts, path[:, 1:], obs), 1.0)
        self.model = self._draw(trans_counts, obs_counts)
        return self.model

    def log_likelihood(self, model: TabularPOMDP) -> float:
        return sum(forward_log_likelihood(model, a, o, r) for a, o, r in self.episodes)

    def choose_policy(self, t: int) -> dict[History, int]:
        candidates = []
        for _ in range(self.M):
            for _ in range(self.sweeps):
                model = self.gibbs_step()
            candidates.append(model)
        plans = [plan_histories(m, self.H) for m in candidates]
        logw = np.array([self.gamma * np.sqrt(t) * v for v, _ in plans])
        if self.eta != 1.0:
            logw += np.array([(self.eta - 1.0) * self.log_likelihood(m) for m in candidates])
        w = np.exp(logw - logw.max())
        return plans[int(self.rng.choice(self.M, p=w / w.sum()))][1]

    def record(self, actions: np.ndarray, observations: np.ndarray, rewards: np.ndarray) -> None:
        self.episodes.append((actions, observations, rewards))


def run_pomdp(T: int = 200, H: int = 3, seed: int = 0, **kwargs: float) -> np.ndarray:
    """Per-episode exact regret of ``OPSPomdp`` on Tiger."""
    truth = tiger()
    v_star, _ = plan_histories(truth, H)
    rng = np.random.default_rng(seed)
    agent = OPSPomdp(truth, H, rng, **kwargs)
    regret = np.empty(T)
    for t in range(1, T + 1):
        policy = agent.choose_policy(t)
        regret[t - 1] = v_star - evaluate_history_policy(truth, policy, H)
        agent.record(*sample_episode(truth, policy, H, rng))
    return regret
