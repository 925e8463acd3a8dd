"""The exact regret protocol (spec §2.9): run an agent, evaluate each executed policy exactly, summarise."""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from gec_rl.agents import Task, make_agent
from gec_rl.agents.base import Agent
from gec_rl.envs import Simulator, TabularMDP, make_env
from gec_rl.planning import backward_induction
from paperlab_core.errors import ConfigError


class ExactEvaluator:
    """V*_1(μ) and exact V^π_1(μ) of time-dependent policies on the true model (sparse P for speed)."""

    def __init__(self, mdp: TabularMDP, H: int) -> None:
        self.mdp, self.H = mdp, H
        self.R = mdp.R
        self.P_sparse = sp.csr_matrix(mdp.P.reshape(mdp.S * mdp.A, mdp.S))
        self.P_T = self.P_sparse.T.tocsr()  # (S, S·A): pushes a state–action distribution one step
        self.Q_star, self.V_star = backward_induction(mdp.P, self.R, H)
        self.v_star = float(self.V_star[0] @ mdp.mu)

    def values(self, policy: np.ndarray) -> np.ndarray:
        """V^π (H+1, S) by backward policy evaluation."""
        S, A = self.mdp.S, self.mdp.A
        V = np.zeros((self.H + 1, S))
        for h in range(self.H - 1, -1, -1):
            Q = self.R + (self.P_sparse @ V[h + 1]).reshape(S, A)
            V[h] = np.einsum("ij,ij->i", policy[h], Q)
        return V

    def value(self, policy: np.ndarray) -> float:
        return float(self.values(policy)[0] @ self.mdp.mu)

    def occupancy(self, policy: np.ndarray) -> np.ndarray:
        """Σ_h Pr^π(x_h = s, a_h = a) under the true model from μ, shape (S, A)."""
        S, A = self.mdp.S, self.mdp.A
        d = self.mdp.mu.astype(float)
        total = np.zeros((S, A))
        P_T = self.P_T
        for h in range(self.H):
            joint = d[:, None] * policy[h]
            total += joint
            d = P_T @ joint.reshape(-1)
        return total


def task_for(mdp: TabularMDP, H: int, T: int) -> Task:
    return Task(S=mdp.S, A=mdp.A, H=H, r=mdp.r, mu=mdp.mu, T=T)


def job_seed(seed: int, env: str, agent: str) -> int:
    """A job's RNG seed derived from (seed, env, agent), independent of worker scheduling."""
    return int(
        np.random.SeedSequence([seed, zlib.crc32(env.encode()), zlib.crc32(agent.encode())]).generate_state(
            1
        )[0]
    )


@dataclass
class RunResult:
    """Per-episode records of one run (arrays of length T)."""

    inst_regret: np.ndarray  # V*_1(μ) − V^{π_t}_1(μ)
    v_pi: np.ndarray  # V^{π_t}_1(μ) of the executed policy
    model_value: np.ndarray  # V_{1,f^t}(μ) of the hypothesis acted on (NaN if the agent has none)
    v_star: float
    cpu_s: np.ndarray  # cumulative process (CPU) time after each episode
    wall_s: np.ndarray  # cumulative elapsed (wall-clock) time after each episode
    loss: np.ndarray  # in-sample loss of f^t on the data of rounds < t (the loss the agent conditions on)
    train_error: np.ndarray  # Σ_h Σ_{s<t} ℓ_h^s(f^t), the GEC training error (NaN without a model hypothesis)

    @property
    def optimism_gap(self) -> np.ndarray:
        """V*_1 − V_{1,f^t} per episode (≤ 0 under optimism; spec §2.1)."""
        return self.v_star - self.model_value

    @property
    def prediction_error(self) -> np.ndarray:
        """V_{1,f^t} − V^{π_t}_1 per episode (spec §2.1)."""
        return self.model_value - self.v_pi


class Diagnostics:
    """The in-sample quantities of the GEC analysis (spec §2.2), computed exactly from the true model.

    It keeps the observed transition counts N(s, a, s') and the cumulative occupancy D(s, a) = Σ_{s<t} Σ_h
    Pr^{π_s}(x_h = s, a_h = a) of the executed policies under P* (Q-type exploration, π_exp = π_f). For an agent
    whose hypothesis is a transition model P_f (``agent.hypothesis_model()``):

    * ``loss`` = Σ N(s,a,s')·log(P*(s'|s,a)/P_f(s'|s,a)): the negative log-likelihood the tempered posterior
      conditions on (spec §2.5), with the common baseline f* subtracted (it cancels in the posterior);
    * ``train_error`` = Σ_{s,a} D(s,a)·D_H²(P_f(·|s,a), P*(·|s,a)) = Σ_h Σ_{s<t} ℓ_h^s(f) with the model-based
      training error ℓ_h^s(f) = E_{π_{f^s}} D_H² of spec §2.2.

    Other agents report their own ``agent.in_sample_loss()`` (the corrected Bellman loss of ``ops_mf``) and no
    training error. Nothing here draws random numbers, so diagnostics never change a run.
    """

    def __init__(self, mdp: TabularMDP, evaluator: ExactEvaluator) -> None:
        self.mdp, self.evaluator = mdp, evaluator
        self.counts = np.zeros((mdp.S, mdp.A, mdp.S))
        self.occupancy = np.zeros((mdp.S, mdp.A))
        with np.errstate(divide="ignore"):
            self.log_p_star = np.log(mdp.P)

    def measure(self, agent: Agent) -> tuple[float, float]:
        """(loss, train_error) of the agent's current hypothesis on the data of the previous rounds."""
        from gec_rl.theory import hellinger_squared_rows

        model = agent.hypothesis_model()
        if model is None:
            return agent.in_sample_loss(), math.nan
        seen = self.counts > 0
        with np.errstate(divide="ignore"):
            log_ratio = self.log_p_star[seen] - np.log(model[seen])
        loss = float(self.counts[seen] @ log_ratio)
        train = float((self.occupancy * hellinger_squared_rows(model, self.mdp.P)).sum())
        return loss, train

    def update(self, policy: np.ndarray, transitions: list[tuple[int, int, int]]) -> None:
        """Add the executed policy's occupancy and the episode's transitions (s, a, s')."""
        self.occupancy += self.evaluator.occupancy(policy)
        for s, a, s_next in transitions:
            self.counts[s, a, s_next] += 1.0


@dataclass
class EpisodeRecord:
    v_pi: float
    model_value: float
    loss: float
    train_error: float


def run_episode(
    agent: Agent, sim: Simulator, evaluator: ExactEvaluator, diagnostics: Diagnostics, t: int, H: int
) -> EpisodeRecord:
    """One round of the protocol, shared by :func:`run_agent` and ``RegretModule.training_step``: the agent
    samples/plans (``begin_episode``), its executed policy and its hypothesis are scored exactly, the episode is
    played on the simulator and the agent updates (``end_episode``)."""
    agent.begin_episode(t)
    policy = agent.policy()
    v_pi = evaluator.value(policy)
    loss, train_error = diagnostics.measure(agent)
    s = sim.reset()
    transitions = []
    for h in range(H):
        a = agent.act(h, s)
        s_next, reward = sim.step(a)
        agent.observe(h, s, a, reward, s_next)
        transitions.append((s, a, s_next))
        s = s_next
    agent.end_episode()
    diagnostics.update(policy, transitions)
    return EpisodeRecord(v_pi, float(agent.model_value), loss, train_error)


def run_agent(
    mdp: TabularMDP, agent: Agent, T: int, H: int, seed: int, evaluator: ExactEvaluator | None = None
) -> RunResult:
    """Run T episodes of :func:`run_episode`; every executed policy is scored exactly (pseudo-regret)."""
    check_horizon(H)
    evaluator = evaluator or ExactEvaluator(mdp, H)
    diagnostics = Diagnostics(mdp, evaluator)
    sim = Simulator(mdp, seed)
    columns = np.empty((6, T))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in range(1, T + 1):
        rec = run_episode(agent, sim, evaluator, diagnostics, t, H)
        columns[:, t - 1] = (
            rec.v_pi,
            rec.model_value,
            rec.loss,
            rec.train_error,
            time.process_time() - cpu0,
            time.perf_counter() - wall0,
        )
    v_pi, model_value, loss, train_error, cpu, wall = columns
    return RunResult(
        evaluator.v_star - v_pi, v_pi, model_value, evaluator.v_star, cpu, wall, loss, train_error
    )


def check_horizon(H: int) -> None:
    """H must be a positive integer (the exact harness pads terminated episodes up to H)."""
    if not isinstance(H, int) or H < 1:
        raise ConfigError(f"horizon H must be a positive integer (got {H!r})")


def run_job(env: str, agent_spec: str, seed: int, T: int, H: int, **overrides: Any) -> RunResult:
    """One (env, agent, seed) job of the regret study; the RNG comes from :func:`job_seed`.

    ``overrides`` are agent keyword arguments that do not change the spec string (``device`` of
    ``ops_linear_lmc``); options in the spec string win.
    """
    mdp = make_env(env, horizon=H)
    base = job_seed(seed, env, agent_spec)
    agent = make_agent(agent_spec, task_for(mdp, H, T), np.random.default_rng(base), **overrides)
    return run_agent(mdp, agent, T, H, seed=base + 1)


def slope_between(r_quarter: float, r_end: float) -> float:
    """log(R(T)/R(T/4))/log 4 from the two values; NaN if R(T/4) ≤ 0."""
    if r_quarter <= 0:
        return math.nan
    return math.log(r_end / r_quarter) / math.log(4.0)


def two_point_slope(cum_regret: np.ndarray) -> float:
    """log(R(T)/R(T/4))/log 4 of a cumulative-regret curve (spec §2.9); NaN if R(T/4) = 0."""
    T = len(cum_regret)
    return slope_between(float(cum_regret[T // 4 - 1]), float(cum_regret[-1]))


def summarise(cum_regret: np.ndarray) -> dict[str, float]:
    """R(T/4), R(T/2), R(T), R(T)/T and the two-point slope for one run."""
    T = len(cum_regret)
    return {
        "R_T4": float(cum_regret[T // 4 - 1]),
        "R_T2": float(cum_regret[T // 2 - 1]),
        "R_T": float(cum_regret[-1]),
        "R_T_over_T": float(cum_regret[-1] / T),
        "slope": two_point_slope(cum_regret),
    }
