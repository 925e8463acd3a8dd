"""The OPS losses as pure functions (spec §2.4–2.5).

Transitions are arrays ``h, s, a, r, s_next`` (steps 0-indexed). Q tables are (H, S, A); ``Q_{H} = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Transitions:
    """A batch of recorded transitions (round s of spec §2.4 flattened over rounds)."""

    h: np.ndarray
    s: np.ndarray
    a: np.ndarray
    r: np.ndarray
    s_next: np.ndarray


@dataclass
class TabularStats:
    """Sufficient statistics per (h, s, a): visits n, reward sums and next-state counts N (spec §2.4)."""

    n: np.ndarray  # (H, S, A)
    reward_sum: np.ndarray  # (H, S, A)
    next_counts: np.ndarray  # (H, S, A, S)

    @classmethod
    def empty(cls, H: int, S: int, A: int) -> TabularStats:
        return cls(np.zeros((H, S, A)), np.zeros((H, S, A)), np.zeros((H, S, A, S)))

    @classmethod
    def from_transitions(cls, data: Transitions, H: int, S: int, A: int) -> TabularStats:
        stats = cls.empty(H, S, A)
        np.add.at(stats.n, (data.h, data.s, data.a), 1.0)
        np.add.at(stats.reward_sum, (data.h, data.s, data.a), data.r)
        np.add.at(stats.next_counts, (data.h, data.s, data.a, data.s_next), 1.0)
        return stats


def next_values(Q: np.ndarray) -> np.ndarray:
    """V_{h+1}(s) = max_a Q_{h+1}(s, a) for h = 0..H−1, with V_{H} = 0: returns (H, S)."""
    V = np.zeros(Q.shape[:2])
    V[:-1] = Q[1:].max(-1)
    return V


def tabular_targets(Q: np.ndarray, stats: TabularStats) -> np.ndarray:
    """ȳ_{h,s,a}(f) = r̄_{h,s,a} + (1/n) Σ_s' N_{h,s,a,s'} max_a' Q_{h+1,f}(s', a') (spec §2.4); 0 if n = 0."""
    V_next = next_values(Q)
    total = stats.reward_sum + np.einsum("hsat,ht->hsa", stats.next_counts, V_next)
    return np.divide(total, stats.n, out=np.zeros_like(total), where=stats.n > 0)


def corrected_loss_tabular(Q: np.ndarray, stats: TabularStats) -> np.ndarray:
    """Per-step corrected loss L_h(f) = Σ_{s,a} n_{h,s,a}(Q_h(s,a) − ȳ_{h,s,a}(f))² (spec §2.4 closed form).

    Equals Σ_s δ_h^s(f; f)² − inf_{g_h} Σ_s δ_h^s(f; g)² when H_h is all tables. Returns (H,).
    """
    return (stats.n * (Q - tabular_targets(Q, stats)) ** 2).sum((1, 2))


def td_residuals(Q: np.ndarray, G: np.ndarray, data: Transitions) -> np.ndarray:
    """δ_h^s(f; g) = Q_{h,g}(x_h, a_h) − r_h − V_{h+1,f}(x_{h+1}) for every transition (spec §2.4)."""
    V_next = next_values(Q)
    return G[data.h, data.s, data.a] - data.r - V_next[data.h, data.s_next]


def squared_td_loss(Q: np.ndarray, data: Transitions) -> np.ndarray:
    """The uncorrected loss Σ_s δ_h^s(f; f)² per step (biased by the conditional variance of r + V(x'))."""
    H = Q.shape[0]
    return np.bincount(data.h, weights=td_residuals(Q, Q, data) ** 2, minlength=H)


def corrected_loss_bruteforce(Q: np.ndarray, data: Transitions) -> np.ndarray:
    """Σ δ(f;f)² − min over tables g of Σ δ(f;g)², the min by least squares on a one-hot design (reference)."""
    H, S, A = Q.shape
    targets = data.r + next_values(Q)[data.h, data.s_next]
    out = squared_td_loss(Q, data)
    for h in range(H):
        mask = data.h == h
        if not mask.any():
            continue
        design = np.zeros((int(mask.sum()), S * A))
        design[np.arange(design.shape[0]), data.s[mask] * A + data.a[mask]] = 1.0
        w, *_ = np.linalg.lstsq(design, targets[mask], rcond=None)
        out[h] -= float(((design @ w - targets[mask]) ** 2).sum())
    return out


def linear_targets(
    theta_next: np.ndarray | None, phi_next: np.ndarray, r: np.ndarray, cap: float
) -> np.ndarray:
    """y = r + max_a' φ(s', a')ᵀθ_{h+1} clipped to [0, cap] (spec §2.4); ``phi_next`` is (n, A, d)."""
    if theta_next is None:
        return np.clip(r, 0.0, cap)
    return np.clip(r + (phi_next @ theta_next).max(-1), 0.0, cap)


def linear_regression_stats(phi: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Λ = Σ φφᵀ and ŵ = Λ⁺ Σ φ y (normal equations)."""
    Lam = phi.T @ phi
    w_hat = np.linalg.pinv(Lam) @ (phi.T @ y)
    return Lam, w_hat


def corrected_loss_linear(theta: np.ndarray, phi: np.ndarray, y: np.ndarray) -> float:
    """(θ − ŵ)ᵀ Λ (θ − ŵ) = Σ(φᵀθ − y)² − min_w Σ(φᵀw − y)² (spec §2.4, linear closed form)."""
    Lam, w_hat = linear_regression_stats(phi, y)
    diff = theta - w_hat
    return float(diff @ Lam @ diff)


def model_log_likelihood(P: np.ndarray, data: Transitions) -> float:
    """Σ log P_f(x' | x, a) over recorded transitions of a time-homogeneous model P (S, A, S)."""
    with np.errstate(divide="ignore"):
        return float(np.log(P[data.s, data.a, data.s_next]).sum())


def model_based_loss(P: np.ndarray, data: Transitions, eta: float = 1.0) -> float:
    """Tempered negative log-likelihood η·(−Σ log P_f(x'|x,a)); the posterior uses exp(−loss) (spec §2.5)."""
    return -eta * model_log_likelihood(P, data)
