"""A Langevin "optimiser" so that the LMC sampler's parameter updates are ordinary ``torch.optim`` steps (and,
inside ``gec-rl train``, the LightningModule's own optimiser: device placement, precision plugins and the
strategy's ``optimizer_step`` apply to it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch


class Langevin(torch.optim.Optimizer):
    """One (preconditioned) unadjusted Langevin step per :meth:`step`, with ``p.grad`` read as ∇U(θ):

        θ ← θ − ε·C∇U(θ) + √(2ε)·chol(C)ξ,  ξ ~ N(0, I)

    (Ishfaq et al., ICLR 2024, LMC-LSVI). Per parameter group: ``lr`` = ε (a float, or a tensor of per-coordinate
    steps, i.e. a diagonal preconditioner folded into ε), ``precond`` = C (``None`` = I, a 1-D
    tensor = a diagonal C over the last axis, a matrix = a full C acting on the last axis) and ``generator`` (a
    ``torch.Generator`` on the parameters' device, or ``None``). Use :meth:`bind` to point a group at new
    tensors (the sampler moves one layer θ_h at a time).
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 0.1) -> None:
        super().__init__(params, {"lr": lr, "precond": None, "chol": None, "generator": None})

    def bind(
        self,
        param: torch.Tensor,
        lr: float | torch.Tensor,
        precond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        """Make the first group update ``param`` with step ``lr`` and preconditioner ``precond``."""
        group = self.param_groups[0]
        group["params"] = [param]
        group["lr"], group["precond"], group["generator"] = lr, precond, generator
        if precond is None:
            group["chol"] = None
        elif precond.ndim == 1:
            group["chol"] = precond.sqrt()
        else:
            group["chol"] = torch.linalg.cholesky(precond)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, precond, chol = group["lr"], group["precond"], group["chol"]
            scale = (2.0 * lr).sqrt() if isinstance(lr, torch.Tensor) else (2.0 * lr) ** 0.5
            for p in group["params"]:
                if p.grad is None:
                    continue
                noise = torch.randn(p.shape, dtype=p.dtype, device=p.device, generator=group["generator"])
                g = p.grad
                if precond is not None and precond.ndim == 1:
                    g = g * precond
                    noise = noise * chol
                elif precond is not None:
                    g = g @ precond.T
                    noise = noise @ chol.T
                p.copy_(p - lr * g + scale * noise)
        return loss
