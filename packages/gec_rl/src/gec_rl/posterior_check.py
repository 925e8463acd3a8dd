"""``gec-rl posterior-check``: approximate samplers against exact references on tiny problems (criteria 11, 13).

* ``ops_mf``: a 2-state, 2-action, 2-step MDP with fixed data. The reference is self-normalised importance
  sampling from the uniform prior box weighted by the OPS density (ESS ≥ 10⁴); compared are the distribution over
  the 16 deterministic greedy policies (total variation) and E[V_{1,f}(μ)].
* ``ops_linear_lmc``: one-hot features and fixed θ_{h+1}; 5,000 preconditioned-ULA chains against the exact
  Gaussian conditional (mean z-scores, relative Frobenius error of the covariance).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import torch

from gec_rl.agents.base import Task
from gec_rl.agents.linear import gaussian_conditional, one_hot_features, ula
from gec_rl.agents.model_free import OPSModelFree, layer_log_factor, log_layer_normaliser
from gec_rl.losses import TabularStats, Transitions

H_TINY, S_TINY, A_TINY = 2, 2, 2
MU_TINY = np.array([0.6, 0.4])


def tiny_stats(n_per_layer: int = 6, seed: int = 0) -> TabularStats:
    rng = np.random.default_rng(seed)
    n = n_per_layer
    data = Transitions(
        h=np.repeat([0, 1], n),
        s=rng.integers(0, S_TINY, 2 * n),
        a=rng.integers(0, A_TINY, 2 * n),
        r=rng.random(2 * n),
        s_next=rng.integers(0, S_TINY, 2 * n),
    )
    return TabularStats.from_transitions(data, H_TINY, S_TINY, A_TINY)


def policy_ids(Q: np.ndarray) -> np.ndarray:
    """Index 0..15 of the deterministic greedy policy of each Q (K, H, S, A)."""
    bits = Q.argmax(-1).reshape(len(Q), -1)
    return bits @ (2 ** np.arange(bits.shape[1]))


def importance_reference(
    stats: TabularStats, eta: float, gamma: float, normalised: bool, draws: int = 400_000, seed: int = 1
) -> tuple[np.ndarray, float, float]:
    """Policy distribution, E[V_1(μ)] and ESS under the OPS density, by SNIS from the uniform prior box.

    ``normalised`` divides each layer's likelihood by its normaliser Z_h(Q_{h+1}) (the ``conditional`` target).
    """
    rng = np.random.default_rng(seed)
    Q = rng.random((draws, H_TINY, S_TINY, A_TINY)) * np.array([2.0, 1.0])[None, :, None, None]
    V1 = Q[:, 1].max(-1)
    logw = (
        layer_log_factor(stats, 0, Q[:, 0], V1, eta)
        + layer_log_factor(stats, 1, Q[:, 1], np.zeros((draws, S_TINY)), eta)
        + gamma * Q[:, 0].max(-1) @ MU_TINY
    )
    if normalised:
        logw -= log_layer_normaliser(stats, 0, V1, eta, 2.0)
    w = np.exp(logw - logw.max())
    ess = float(w.sum() ** 2 / (w**2).sum())
    value = float((Q[:, 0].max(-1) @ MU_TINY) @ w / w.sum())
    return np.bincount(policy_ids(Q), weights=w, minlength=16) / w.sum(), value, ess


def check_ops_mf(
    sampler: str, eta: float = 0.25, gamma: float = 2.0, samples: int = 20_000, step_scale: float = 0.1
) -> dict[str, Any]:
    """TV distance of greedy policies and |ΔE[V_1]| between an ``ops_mf`` sampler and the SNIS reference."""
    stats = tiny_stats()
    task = Task(S=S_TINY, A=A_TINY, H=H_TINY, r=np.zeros((S_TINY, A_TINY, S_TINY)), mu=MU_TINY)
    agent = OPSModelFree(
        task,
        np.random.default_rng(2),
        sampler=sampler,
        eta=eta,
        gamma=gamma,
        gamma_schedule="constant",
        step_scale=step_scale,
    )
    agent.stats = stats
    if sampler == "gibbs":
        agent.gibbs_steps(gamma, 500)
        Q = np.stack([agent.gibbs_steps(gamma, 1).copy() for _ in range(samples)])
        weights = np.full(len(Q), 1.0 / len(Q))
    elif sampler == "langevin":
        agent.langevin_steps_run(gamma, 500)
        Q = np.stack([agent.langevin_steps_run(gamma, 4).copy() for _ in range(samples // 2)])
        weights = np.full(len(Q), 1.0 / len(Q))
    else:
        Q = agent.sample_conditional(5 * samples)
        logw = gamma * Q[:, 0].max(-1) @ MU_TINY  # SIR with M → ∞
        weights = np.exp(logw - logw.max())
        weights /= weights.sum()
    freq = np.bincount(policy_ids(Q), weights=weights, minlength=16)
    value = float((Q[:, 0].max(-1) @ MU_TINY) @ weights)
    ref_freq, ref_value, ess = importance_reference(stats, eta, gamma, normalised=sampler == "conditional")
    _, value_no_optimism, _ = importance_reference(stats, eta, 0.0, normalised=sampler == "conditional")
    return {
        "agent": f"ops_mf:{sampler}",
        "tv_policies": float(0.5 * np.abs(freq - ref_freq).sum()),
        "abs_diff_value": abs(value - ref_value),
        "reference_ess": ess,
        "optimism_shift_of_value": ref_value - value_no_optimism,
        "acceptance": agent.accepted / agent.proposed if agent.proposed else None,
    }


def check_lmc(chains: int = 5000, steps: int = 300, step: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """Preconditioned ULA for θ_h | θ_{h+1} (one-hot features) against the exact Gaussian conditional."""
    S, A, eta, sigma0 = 3, 2, 1.0, 2.0
    rng = np.random.default_rng(seed)
    table = torch.as_tensor(one_hot_features(S, A), dtype=torch.float64)
    s, a, s_next = rng.integers(0, S, 12), rng.integers(0, A, 12), rng.integers(0, S, 12)
    phi = table[s, a]
    theta_next = torch.as_tensor(rng.random(S * A), dtype=torch.float64)
    y = (torch.as_tensor(rng.random(12)) + (table[s_next] @ theta_next).max(-1).values).clamp(0, 2)
    precision, b, mean, cov = gaussian_conditional(phi, y, eta, sigma0)
    generator = torch.Generator(device="cpu").manual_seed(seed + 1)
    theta0 = torch.zeros(chains, S * A, dtype=torch.float64)
    samples = ula(theta0, lambda t: t @ precision.T - b, step, steps, generator, precond=cov)
    z = (samples.mean(0) - mean) / (samples.std(0) / chains**0.5)
    cov_err = torch.linalg.norm(torch.cov(samples.T) - cov) / torch.linalg.norm(cov)
    return {
        "agent": "ops_linear_lmc",
        "max_abs_mean_z": float(z.abs().max()),
        "cov_rel_frobenius_error": float(cov_err),
        "exact_mean": mean.tolist(),
        "ridge_mean_matches": bool(
            torch.allclose(
                mean,
                torch.linalg.solve(
                    phi.T @ phi + torch.eye(S * A, dtype=torch.float64) / (2 * eta * sigma0**2), phi.T @ y
                ),
                atol=1e-10,
            )
        ),
    }


def posterior_check(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """``gec-rl posterior-check``: the approximate samplers against exact references on tiny problems."""
    results = []
    if args.agent in ("all", "ops_mf"):
        results += [
            check_ops_mf("conditional"),
            check_ops_mf("gibbs"),
            check_ops_mf("langevin", step_scale=0.02),
        ]
    if args.agent in ("all", "ops_linear_lmc"):
        results.append(check_lmc())
    print(json.dumps(results, indent=2))
    return {"posterior_check": results}
