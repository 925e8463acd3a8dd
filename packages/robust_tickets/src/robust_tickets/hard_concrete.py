"""Hard-concrete distribution of Louizos et al. (2018) as used by the paper (eq. 1-5).

All functions are pure and act element-wise on a tensor of location parameters ``log_alpha``.
"""

from __future__ import annotations

import math

import torch

GAMMA = -0.1  # lower stretch limit (paper eq. 2; official ``l``)
ZETA = 1.1  # upper stretch limit (official ``r``)
BETA = 2.0 / 3.0  # temperature (fixed; official ``b``)
U_EPS = 1e-4  # clamp of the uniform noise (official code)
L0_SHIFT = -BETA * math.log(-GAMMA / ZETA)  # = +1.5986: sigma(log_alpha + L0_SHIFT) = P(m > 0)


def init_log_alpha(mask_p: float = 0.9) -> float:
    """Location parameter whose eval gate equals ``mask_p``: logit((mask_p - gamma)/(zeta - gamma)).

    ``mask_p = 0.9`` gives ln 5 (official-code initialisation; not in the paper).
    """
    if not 0.0 < mask_p < 1.0:
        raise ValueError(f"mask_p must lie in (0, 1), got {mask_p}")
    q = (mask_p - GAMMA) / (ZETA - GAMMA)
    return math.log(q / (1.0 - q))


def stretch_and_clamp(s: torch.Tensor) -> torch.Tensor:
    """m = min(1, max(0, s (zeta - gamma) + gamma)) (paper eq. 3)."""
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def hard_concrete_sample(log_alpha: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """Training-mode sample (paper eq. 2-3) with differentiable plain torch ops.

    s = sigmoid((log u - log(1-u) + log_alpha)/beta), u ~ U(0,1) clamped to [1e-4, 1-1e-4].
    """
    if u is None:
        u = torch.rand_like(log_alpha)
    u = u.clamp(U_EPS, 1.0 - U_EPS)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / BETA)
    return stretch_and_clamp(s)


def hard_concrete_gate(log_alpha: torch.Tensor) -> torch.Tensor:
    """Deterministic inference gate (paper eq. 5): clamp(sigmoid(log_alpha)(zeta-gamma)+gamma, 0, 1)."""
    return stretch_and_clamp(torch.sigmoid(log_alpha))


def prob_nonzero(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(m > 0) = sigmoid(log_alpha - beta log(-gamma/zeta)) (the summand of paper eq. 4)."""
    return torch.sigmoid(log_alpha + L0_SHIFT)


def prob_one(log_alpha: float) -> float:
    """Closed form P(m = 1) = 1 - sigmoid(beta logit((1-gamma)/(zeta-gamma)) - log_alpha)."""
    q = (1.0 - GAMMA) / (ZETA - GAMMA)
    return 1.0 - 1.0 / (1.0 + math.exp(-(BETA * math.log(q / (1 - q)) - log_alpha)))


def prob_zero(log_alpha: float) -> float:
    """Closed form P(m = 0) = sigmoid(beta logit(-gamma/(zeta-gamma)) - log_alpha)."""
    q = -GAMMA / (ZETA - GAMMA)
    return 1.0 / (1.0 + math.exp(-(BETA * math.log(q / (1 - q)) - log_alpha)))


class FusedHardConcrete(torch.autograd.Function):
    """One fused kernel for the training sample that saves only the output gate for the backward.

    Backward: dm/dlog_alpha = (zeta - gamma) s (1 - s) / beta inside (0, 1), 0 where clamped, with
    s = (m - gamma)/(zeta - gamma) recovered from the saved m (no noise tensor is kept).
    """

    @staticmethod
    def forward(ctx, log_alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad():
            u = u.clamp_(U_EPS, 1.0 - U_EPS)
            m = torch.log(u).sub_(torch.log1p(u.neg_()))  # u is scratch memory from here on
            m.add_(log_alpha).div_(BETA).sigmoid_().mul_(ZETA - GAMMA).add_(GAMMA).clamp_(0.0, 1.0)
        ctx.save_for_backward(m)
        return m

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (m,) = ctx.saved_tensors
        s = (m - GAMMA) / (ZETA - GAMMA)
        inside = (m > 0) & (m < 1)
        grad = grad_out * s * (1 - s) * ((ZETA - GAMMA) / BETA)
        return grad * inside, None


def fused_hard_concrete_sample(
    log_alpha: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training sample through :class:`FusedHardConcrete` (one RNG call for the whole tensor)."""
    u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
    return FusedHardConcrete.apply(log_alpha, u)
