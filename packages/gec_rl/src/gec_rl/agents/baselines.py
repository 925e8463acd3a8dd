"""Naive exploration baseline: ε-greedy Q-learning with stage-dependent tables (spec §2.7 `eps_greedy_q`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from gec_rl.agents.base import Agent, Task


class EpsGreedyQ(Agent):
    """Q_h(s,a) += α(r + max_a' Q_{h+1}(s',a') − Q_h(s,a)), Q_{H+1} = 0, tables initialised at 0.

    The executed policy is the stochastic ε-greedy policy (1 − ε)·greedy + ε·uniform, and that is what
    :meth:`policy` returns for exact evaluation (spec §8: scoring the greedy part would under-report regret).
    The greedy part is frozen at the start of each episode so that ``policy()`` is exactly what was executed.
    """

    name = "eps_greedy_q"

    def __init__(self, task: Task, rng: np.random.Generator, epsilon: float = 0.1, lr: float = 0.1) -> None:
        super().__init__(task, rng)
        if not 0 <= epsilon <= 1 or not 0 < lr <= 1:
            raise ValueError(f"eps_greedy_q needs 0 <= epsilon <= 1 and 0 < lr <= 1 (got {epsilon}, {lr})")
        self.epsilon, self.lr = epsilon, lr
        self.Q = np.zeros((task.H + 1, task.S, task.A))
        self._greedy = np.zeros((task.H, task.S), dtype=np.int64)

    def begin_episode(self, t: int) -> None:
        self._greedy = self.Q[:-1].argmax(-1)
        self.model_value = float(self.task.mu @ self.Q[0].max(-1))  # V_{1,f} of the table f = Q

    def act(self, h: int, s: int) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(self.task.A))
        return int(self._greedy[h, s])

    def observe(self, h: int, s: int, a: int, r: float, s_next: int) -> None:
        target = r + self.Q[h + 1, s_next].max()
        self.Q[h, s, a] += self.lr * (target - self.Q[h, s, a])

    def policy(self) -> np.ndarray:
        task = self.task
        pi = np.full((task.H, task.S, task.A), self.epsilon / task.A)
        np.put_along_axis(pi, self._greedy[..., None], 1.0 - self.epsilon + self.epsilon / task.A, axis=-1)
        return pi

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "Q": self.Q.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.Q = np.asarray(state["Q"], dtype=np.float64).copy()
