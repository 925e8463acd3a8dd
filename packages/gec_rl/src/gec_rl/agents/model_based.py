"""Model-based agents: OPS with SIR (spec §2.7 `ops_mb`), PSRL, max-of-J, UCBVI."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from gec_rl.agents.base import CountingAgent, Task
from gec_rl.planning import expected_reward, plan, plan_sparse
from gec_rl.posteriors import (
    check_posterior_params,
    gamma_at,
    sample_dirichlet_rows,
    sample_models_sparse,
    sir_select,
)


def use_sparse_path(S: int, alpha0: float, counts: np.ndarray, tau: float) -> bool:
    """Spec §2.10: sparse when the expected stored entries per row are below S/8."""
    visited_per_row = float((counts > 0).sum(-1).mean())
    expected = visited_per_row + (S - visited_per_row) * (1.0 - tau**alpha0)
    return expected < S / 8


class OPSModelBased(CountingAgent):
    """OPS model-based with sampling–importance–resampling.

    Posterior (spec §2.3, §2.5): p^t(f) ∝ p⁰(f)·exp(γ_t V_{1,f}(μ))·Π P_f(x'|x,a)^η. Draw M models from the
    tempered conjugate part Dir(α₀ + η N), plan all M at once, pick model i w.p. softmax(γ_t V_i(μ)) and act
    greedily on its Q. γ = 0, η = 1, M = 1 is PSRL; γ = inf, M = J is max-of-J. ``gamma="theory"`` sets the
    constant γ = √(η·T·log|H|/d_GEC) of :func:`gec_rl.theory.theory_gamma` for the task's S, A, H, T.
    """

    name = "ops_mb"

    def __init__(
        self,
        task: Task,
        rng: np.random.Generator,
        M: int = 8,
        eta: float = 1.0,
        gamma: float | str = 1.0,
        gamma_schedule: str = "sqrt_t",
        alpha0: float | None = None,
        sampler: str = "auto",
        tau: float = 1e-12,
    ) -> None:
        super().__init__(task, rng)
        self.alpha0 = 1.0 / task.S if alpha0 is None else float(alpha0)
        if (
            gamma == "theory"
        ):  # the constant-in-T tuning of spec §2.6 for this task (gec_rl.theory.theory_gamma)
            from gec_rl.theory import theory_gamma

            gamma = theory_gamma(float(eta), task.T, task.S, task.A, task.H)
        check_posterior_params(eta, gamma, M, self.alpha0)
        gamma_at(1, gamma_schedule, gamma)  # validates the schedule name
        if sampler not in {"auto", "dense", "sparse"}:
            raise ValueError(f"sampler must be auto, dense or sparse (got {sampler!r})")
        self.M, self.eta, self.gamma, self.gamma_schedule = M, float(eta), float(gamma), gamma_schedule
        self.sampler, self.tau = sampler, tau
        self.last_values = np.zeros(M)
        self.last_gamma = 0.0
        self._models: np.ndarray | sp.csr_matrix | None = None  # the last M models (dense or block CSR)
        self._chosen = 0

    def sample_and_plan(self) -> tuple[np.ndarray, np.ndarray]:
        """Draw M models from Dir(α₀ + ηN) and plan them: returns Q (M,H,S,A) and V_1(μ) (M,)."""
        task = self.task
        sparse = self.sampler == "sparse" or (
            self.sampler == "auto" and use_sparse_path(task.S, self.alpha0, self.counts, self.tau)
        )
        if sparse:
            block, R = sample_models_sparse(
                self.rng, self.counts, self.alpha0, self.eta, self.M, task.r, self.tau
            )
            Q, V = plan_sparse(block, R, task.H)
            self._models = block
        else:
            P = sample_dirichlet_rows(self.rng, self.alpha0 + self.eta * self.counts, self.M)
            Q, V = plan(P, expected_reward(P, task.r), task.H)
            self._models = P
        return Q, V[:, 0] @ task.mu

    def begin_episode(self, t: int) -> None:
        Q, values = self.sample_and_plan()
        self.last_gamma = gamma_at(t, self.gamma_schedule, self.gamma)
        self.last_values = values
        i = sir_select(self.rng, values, self.last_gamma)
        self._chosen = i
        self.model_value = float(values[i])
        self.set_q(Q[i])

    def hypothesis_model(self) -> np.ndarray | None:
        """The selected model P_{f^t} (S, A, S) (densified from the sparse block when needed)."""
        if self._models is None:
            return None
        if isinstance(self._models, np.ndarray):
            return self._models[self._chosen]
        S, A = self.task.S, self.task.A
        i, rows = self._chosen, S * A
        return self._models[i * rows : (i + 1) * rows, i * S : (i + 1) * S].toarray().reshape(S, A, S)


class PSRL(CountingAgent):
    """PSRL (Osband et al. 2013): one untempered Dir(α₀ + N) sample per episode, greedy on it."""

    name = "psrl"

    def __init__(self, task: Task, rng: np.random.Generator, alpha0: float | None = None) -> None:
        super().__init__(task, rng)
        self.alpha0 = 1.0 / task.S if alpha0 is None else float(alpha0)
        check_posterior_params(1.0, 0.0, 1, self.alpha0)

    def begin_episode(self, t: int) -> None:
        P = sample_dirichlet_rows(self.rng, self.alpha0 + self.counts, 1)
        Q, V = plan(P, expected_reward(P, self.task.r), self.task.H)
        self.model_value = float(V[0, 0] @ self.task.mu)
        self.model = P[0]
        self.set_q(Q[0])

    def hypothesis_model(self) -> np.ndarray | None:
        return getattr(self, "model", None)


def max_of_j(task: Task, rng: np.random.Generator, J: int = 8, **kwargs: float) -> OPSModelBased:
    """Max over J posterior samples (OPSRL-like): ``ops_mb`` with γ = inf and M = J."""
    agent = OPSModelBased(task, rng, M=J, gamma=math.inf, gamma_schedule="constant", **kwargs)
    agent.name = "max_of_j"
    return agent


class UCBVI(CountingAgent):
    """UCBVI-Hoeffding (Azar et al. 2017) with empirical P̂ and the bonus form of spec §2.7.

    Q_h = min(H − h + 1, R̂ + P̂V_{h+1} + b_h), b_h = c·(H − h + 1)·√(log(SAHT/δ)/max(1, N(s,a))),
    and Q_h = H − h + 1 for unvisited pairs.
    """

    name = "ucbvi"

    def __init__(self, task: Task, rng: np.random.Generator, c: float = 0.1, delta: float = 0.1) -> None:
        super().__init__(task, rng)
        if c < 0 or not 0 < delta < 1:
            raise ValueError(f"ucbvi needs c >= 0 and 0 < delta < 1 (got c={c}, delta={delta})")
        self.c, self.delta = c, delta

    def begin_episode(self, t: int) -> None:
        task = self.task
        S, A, H = task.S, task.A, task.H
        n = self.counts.sum(-1)
        P_hat = np.divide(self.counts, n[..., None], out=np.zeros_like(self.counts), where=n[..., None] > 0)
        R_hat = expected_reward(P_hat, task.r)
        log_term = math.log(S * A * H * task.T / self.delta)
        scale = np.sqrt(log_term / np.maximum(1.0, n))
        Q = np.empty((H, S, A))
        V = np.zeros(S)
        for h in range(H - 1, -1, -1):
            remaining = H - h
            Q[h] = np.minimum(remaining, R_hat + P_hat @ V + self.c * remaining * scale)
            Q[h][n == 0] = remaining
            V = Q[h].max(-1)
        self.model_value = float(V @ task.mu)
        self.set_q(Q)


class OPSRL(CountingAgent):
    """OPSRL-like (Tiapkin et al., NeurIPS 2022): J Dirichlet samples with an extra optimistic pseudo-state.

    Row (s, a) is drawn from Dir(α₀ + N_{s,a,·}, κ) over the S real states plus a pseudo-state worth the maximal
    remaining return H − h + 1 (1-indexed h), and backward induction takes, per (h, s, a), the max over the J
    sampled backups: Q_h(s,a) = max_j [Σ_s' P_j(s'|s,a)(r(s,a,s') + V_{h+1}(s')) + P_j(⊤|s,a)(H − h + 1)].
    J = 10 and κ = 1 are unverified against the authors' code (spec §9 q4).
    """

    name = "opsrl"

    def __init__(
        self,
        task: Task,
        rng: np.random.Generator,
        J: int = 10,
        kappa: float = 1.0,
        alpha0: float | None = None,
    ) -> None:
        super().__init__(task, rng)
        self.alpha0 = 1.0 / task.S if alpha0 is None else float(alpha0)
        check_posterior_params(1.0, 0.0, J, self.alpha0)
        if kappa <= 0:
            raise ValueError(f"opsrl needs kappa > 0 (got {kappa})")
        self.J, self.kappa = J, kappa

    def begin_episode(self, t: int) -> None:
        task = self.task
        S, A, H = task.S, task.A, task.H
        concentration = np.concatenate([self.alpha0 + self.counts, np.full((S, A, 1), self.kappa)], axis=-1)
        P = sample_dirichlet_rows(self.rng, concentration, self.J)  # (J, S, A, S + 1)
        real, top = P[..., :S], P[..., S]
        R = expected_reward(real, task.r)  # (J, S, A)
        flat = real.reshape(self.J, S * A, S)
        Q = np.empty((H, S, A))
        V = np.zeros(S)
        for h in range(H - 1, -1, -1):
            backups = R + (flat @ V).reshape(self.J, S, A) + top * (H - h)
            Q[h] = np.minimum(backups.max(0), H - h)
            V = Q[h].max(-1)
        self.model_value = float(V @ task.mu)
        self.set_q(Q)
