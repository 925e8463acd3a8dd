"""The target network's momentum (EMA) update and its schedule (BYOL, standard; spec §2.2)."""

from __future__ import annotations

import math

import torch
from torch import nn

SCHEDULES = ("cosine", "constant")


def tau_schedule(step: int, total: int, tau_base: float, schedule: str = "cosine") -> float:
    """τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2 (cosine: τ(0) = τ_base, τ(K) = 1), or τ_base (constant)."""
    if schedule == "constant":
        return float(tau_base)
    if schedule != "cosine":
        raise ValueError(f"ema.schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
    k = min(max(step, 0), max(total, 1))
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / max(total, 1)) + 1.0) / 2.0


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, tau: float) -> None:
    """ξ ← τ·ξ + (1 − τ)·θ for parameters (fp32 arithmetic); buffers (BN statistics) are copied (ours)."""
    t_params = [p for p in target.parameters()]
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError("target and online networks have different parameter lists")
    for t, o in zip(t_params, o_params, strict=True):
        if t.dtype == torch.float32:
            t.mul_(tau).add_(o, alpha=1.0 - tau)
        else:  # keep the arithmetic in fp32 whatever the storage dtype
            t.copy_((t.float() * tau + o.float() * (1.0 - tau)).to(t.dtype))
    for t, o in zip(target.buffers(), online.buffers(), strict=True):
        t.copy_(o)


def freeze_(module: nn.Module) -> nn.Module:
    """No gradients and out of any optimiser: ``requires_grad`` False everywhere."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module
