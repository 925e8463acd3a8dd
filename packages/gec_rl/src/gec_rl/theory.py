"""GEC diagnostics (spec §2.1–2.2, §2.6) as pure functions."""

from __future__ import annotations

import math

import numpy as np


def regret_decomposition(
    v_star: float, model_values: np.ndarray, policy_values: np.ndarray
) -> dict[str, float]:
    """Reg(T) = Σ_t [V_{1,f^t} − V^{π_t}_1] + Σ_t [V*_1 − V_{1,f^t}] (spec §2.1).

    Returns the prediction-error sum, the optimism-gap sum (≤ 0 under optimism) and their total, the regret.
    """
    prediction_error = float(np.sum(model_values - policy_values))
    optimism_gap = float(np.sum(v_star - model_values))
    return {
        "prediction_error": prediction_error,
        "optimism_gap": optimism_gap,
        "regret": prediction_error + optimism_gap,
    }


def hellinger_squared(p: np.ndarray, q: np.ndarray) -> float:
    """D_H²(P, Q) = ½ Σ (√P − √Q)², the model-based training error of spec §2.2."""
    return float(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2))


def tabular_log_class_size(S: int, A: int, eps: float) -> float:
    """|H| proxy for tabular transition models: an ε-net of each of the S·A simplices Δ^{S−1}.

    log|H| ≈ S·A·(S − 1)·log(1/ε) (derived; the paper's own covering argument is unverified).
    """
    return S * A * (S - 1) * math.log(1.0 / eps)


def theory_gamma(eta: float, T: int, S: int, A: int, H: int, eps: float | None = None) -> float:
    """The constant-in-T tuning γ ≍ √(η·T·log|H| / d_GEC) with d_GEC = H·S·A (spec §2.6, §9 q3), ε = 1/T."""
    eps = eps or 1.0 / T
    d_gec = H * S * A
    return math.sqrt(eta * T * tabular_log_class_size(S, A, eps) / d_gec)


def hellinger_squared_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise D_H² over the last axis (batched :func:`hellinger_squared`)."""
    return 0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1)


def gec_bound_tabular(H: int, S: int, A: int, T: int, eps: float | None = None) -> float:
    """The theoretical GEC of a tabular MDP as a linear MDP with one-hot φ (d = S·A, spec §2.2):
    d(ε) = O(H·d·log(1 + T/ε)), evaluated with constant 1 and ε = 1/T (the O-constant is not verified)."""
    eps = eps or 1.0 / T
    return H * S * A * math.log(1.0 + T / eps)


def gec_estimate(
    prediction_error: np.ndarray, train_error: np.ndarray, H: int, burn_in: bool = True
) -> float:
    """The smallest d ≥ 0 for which the GEC inequality (spec §2.2, ε = 0) holds on every prefix τ ≤ T of the
    realised sequence f¹…f^T:

        Σ_{t≤τ} PE_t ≤ √(d · Σ_{t≤τ} L_t) + 2·min{H·d, H²·τ}    (burn-in term dropped with ``burn_in=False``)

    with PE_t = V_{1,f^t} − V^{π_{f^t}}_1 and L_t = Σ_h Σ_{s<t} ℓ_h^s(f^t) the in-sample training error. The GEC
    is a supremum over all sequences, so this is a **lower bound** on d_GEC measured on the agent's own
    sequence. Without the burn-in term the first rounds (no data yet, Σ L = 0, Σ PE > 0) would make every
    prefix bound infinite, so ``burn_in=False`` returns the whole-run ratio (Σ_t PE_t)₊² / Σ_t L_t instead.
    Returns 0 when Σ PE ≤ 0 throughout.
    """
    pe = np.cumsum(np.asarray(prediction_error, dtype=float))
    loss = np.cumsum(np.asarray(train_error, dtype=float))
    tau = np.arange(1, len(pe) + 1, dtype=float)

    def holds(d: float) -> bool:
        slack = 2.0 * np.minimum(H * d, H**2 * tau) if burn_in else 0.0
        return bool(np.all(pe <= np.sqrt(d * loss) + slack + 1e-12))

    if holds(0.0):
        return 0.0
    if not burn_in:
        if pe[-1] <= 0:
            return 0.0
        return float(pe[-1] ** 2 / loss[-1]) if loss[-1] > 0 else math.inf
    hi = 1.0
    while not holds(hi):
        hi *= 2.0
        if hi > 1e300:
            return math.inf
    lo = hi / 2.0 if hi > 1.0 else 0.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi
