"""The agent interface shared by every algorithm (spec §2.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Task:
    """What an agent knows up front: sizes, horizon, the known transition rewards r(s,a,s'), μ and T."""

    S: int
    A: int
    H: int
    r: np.ndarray  # (S, A, S) known transition rewards (rescaled)
    mu: np.ndarray  # (S,) known initial distribution
    T: int = 2000  # planned number of episodes (UCBVI's log term)


class Agent:
    """``begin_episode(t)`` samples/plans, ``act``/``observe`` run the episode, ``end_episode`` updates.

    ``policy()`` returns the executed time-dependent policy (H,S,A) for exact evaluation. ``model_value`` is
    V_{1,f^t}(μ) of the hypothesis acted on (NaN for agents without one); it feeds the regret decomposition.
    """

    name = "agent"

    def __init__(self, task: Task, rng: np.random.Generator) -> None:
        self.task = task
        self.rng = rng
        self.model_value = float("nan")

    def begin_episode(self, t: int) -> None:
        raise NotImplementedError

    def act(self, h: int, s: int) -> int:
        raise NotImplementedError

    def observe(self, h: int, s: int, a: int, r: float, s_next: int) -> None:
        raise NotImplementedError

    def end_episode(self) -> None:
        """Per-episode update hook (most agents update online in ``observe``)."""

    def policy(self) -> np.ndarray:
        raise NotImplementedError

    def hypothesis_model(self) -> np.ndarray | None:
        """The transition model P_f (S, A, S) acted on this episode, for model-based agents; else ``None``."""
        return None

    def in_sample_loss(self) -> float:
        """The agent's own in-sample loss of f^t on past data (model-free agents); NaN if it has none."""
        return float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class GreedyQAgent(Agent):
    """An agent that acts greedily on a Q table (H,S,A) chosen at the start of each episode."""

    def __init__(self, task: Task, rng: np.random.Generator) -> None:
        super().__init__(task, rng)
        self.Q = np.zeros((task.H, task.S, task.A))
        self._actions = np.zeros((task.H, task.S), dtype=np.int64)

    def set_q(self, Q: np.ndarray) -> None:
        self.Q = Q
        self._actions = Q.argmax(-1)

    def act(self, h: int, s: int) -> int:
        return int(self._actions[h, s])

    def policy(self) -> np.ndarray:
        H, S, A = self.Q.shape
        pi = np.zeros((H, S, A))
        np.put_along_axis(pi, self._actions[..., None], 1.0, axis=-1)
        return pi


class CountingAgent(GreedyQAgent):
    """A greedy agent that records transition counts N[s, a, s'] (model-based posteriors, UCBVI)."""

    def __init__(self, task: Task, rng: np.random.Generator) -> None:
        super().__init__(task, rng)
        self.counts = np.zeros((task.S, task.A, task.S))

    def observe(self, h: int, s: int, a: int, r: float, s_next: int) -> None:
        self.counts[s, a, s_next] += 1.0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "counts": self.counts.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.counts = np.asarray(state["counts"], dtype=np.float64).copy()
