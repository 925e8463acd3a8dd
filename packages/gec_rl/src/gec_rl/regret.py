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
    inst_regret: np.ndarray
    v_pi: np.ndarray
    model_value: np.ndarray
    v_star: float
    wall_s: np.ndarray  # cumulative wall time after each episode


def run_agent(
    mdp: TabularMDP, agent: Agent, T: int, H: int, seed: int, evaluator: ExactEvaluator | None = None
) -> RunResult:
    """Run T episodes; after each, score the executed policy exactly (pseudo-regret, no sampling noise)."""
    check_horizon(H)
    evaluator = evaluator or ExactEvaluator(mdp, H)
    sim = Simulator(mdp, seed)
    v_pi = np.empty(T)
    model_value = np.empty(T)
    wall = np.empty(T)
    start = time.process_time()
    for t in range(1, T + 1):
        agent.begin_episode(t)
        v_pi[t - 1] = evaluator.value(agent.policy())
        model_value[t - 1] = agent.model_value
        s = sim.reset()
        for h in range(H):
            a = agent.act(h, s)
            s_next, reward = sim.step(a)
            agent.observe(h, s, a, reward, s_next)
            s = s_next
        agent.end_episode()
        wall[t - 1] = time.process_time() - start
    inst = evaluator.v_star - v_pi
    return RunResult(inst, v_pi, model_value, evaluator.v_star, wall)


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
