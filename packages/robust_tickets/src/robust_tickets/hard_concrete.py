"""Hard-concrete distribution of Louizos et al. (2018) as used by the paper (eq. 1-5).

All functions are pure and act element-wise on a tensor of location parameters ``log_alpha``.
"""

from __future__ import annotations

import math

import torch

from paperlab_core.errors import ConfigError

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
        raise ConfigError(f"mask_p must lie in (0, 1), got {mask_p}")
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


CHUNK = 1 << 17  # elements per block of the fused kernel: 512 KiB of float32, stays in a core's cache


def _block_size(flat: torch.Tensor) -> int:
    """:data:`CHUNK` on CPU; one block on accelerators (their caching allocator reuses memory, and a Python loop of
    small kernels would be launch-bound there)."""
    return max(1, min(CHUNK if flat.device.type == "cpu" else flat.numel(), flat.numel()))


class FusedHardConcrete(torch.autograd.Function):
    """The training sample (paper eq. 2-3) as one blocked, in-place kernel that saves only the output gate.

    The noise ``u`` is overwritten with the gate (and returned): per block of :data:`CHUNK` entries the whole
    chain (clamp, logit, shift, sigmoid, stretch, clamp) runs while the block is in cache, with one small scratch
    block. Over the 10.8M MiniLM mask entries, whole-vector ops would instead stream several 43 MB temporaries
    through memory on every pass, each one a fresh mmap whose pages fault in (glibc maps blocks above 32 MB anew on
    every allocation); that cost more than the official per-matrix ops it replaces.

    Backward: dm/dlog_alpha = (zeta - gamma) s (1 - s) / beta inside (0, 1), 0 where clamped, with
    s = (m - gamma)/(zeta - gamma) recovered from the saved m (no noise tensor is kept), blocked the same way.
    """

    @staticmethod
    def forward(ctx, log_alpha: torch.Tensor, u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad():
            flat_u, flat_la = u.view(-1), log_alpha.detach().reshape(-1)
            size = _block_size(flat_u)
            scratch = torch.empty(size, dtype=u.dtype, device=u.device)
            for start in range(0, flat_u.numel(), size):
                block = flat_u[start : start + size]
                tmp = scratch[: block.numel()]
                block.clamp_(U_EPS, 1.0 - U_EPS)
                torch.neg(block, out=tmp).log1p_()  # log(1 - u)
                block.log_().sub_(tmp).add_(flat_la[start : start + size])
                block.div_(BETA).sigmoid_().mul_(ZETA - GAMMA).add_(GAMMA).clamp_(0.0, 1.0)
        ctx.mark_dirty(u)
        ctx.save_for_backward(u)
        return u

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (m,) = ctx.saved_tensors
        flat_m, flat_g = m.view(-1), grad_out.reshape(-1)
        grad = torch.empty_like(flat_m)
        size = _block_size(flat_m)
        scratch = torch.empty(size, dtype=m.dtype, device=m.device)
        for start in range(0, flat_m.numel(), size):
            mb, out = flat_m[start : start + size], grad[start : start + size]
            s = scratch[: mb.numel()]
            torch.sub(mb, GAMMA, out=s).div_(ZETA - GAMMA)  # s
            torch.mul(s, s, out=out)  # s^2
            s.sub_(out).mul_((ZETA - GAMMA) / BETA)  # s (1 - s) (zeta - gamma) / beta
            s.mul_(mb.gt(0.0).logical_and_(mb.lt(1.0)))  # 0 where the gate is clamped
            torch.mul(flat_g[start : start + size], s, out=out)
        return grad.view_as(m), None


def fused_hard_concrete_sample(
    log_alpha: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
) -> torch.Tensor:
    """Training sample through :class:`FusedHardConcrete` (one RNG call for the whole tensor).

    ``noise``: a preallocated tensor of ``log_alpha``'s shape to draw the uniforms into and hold the gate (a
    persistent workspace, so no 43 MB block is mapped anew on every pass); the same numbers as without it. Its
    previous gate must be dead: autograd's version check refuses a backward through an overwritten one."""
    if noise is None:
        u = torch.rand(log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype)
    else:
        if noise.shape != log_alpha.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, log_alpha {tuple(log_alpha.shape)}")
        u = noise.detach()  # a fresh alias: the workspace never joins the graph itself
        u.uniform_(generator=generator)
    return FusedHardConcrete.apply(log_alpha, u)
