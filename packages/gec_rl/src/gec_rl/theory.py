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
