"""Dataset Distillation (Wang et al. 2018) with the backdoor hooks, as in the official DD fork (spec §2.7).

Learnable: ``distill_steps`` synthetic batches and one learning rate per unrolled step (``steps × epochs``),
parameterised as ``lr_t = softplus(ρ_t)`` with ``ρ_t = log(expm1(distill_lr))`` initially. One outer iteration:

    w₀ = the fixed (xavier, gain 1) initialisation
    w_{t+1} = w_t − lr_t ∇w CE(f(x̃_t; w_t), ỹ_t)                t = 0 … T−1 (the data steps repeat each epoch)
    DOORPING: update the trigger on w_T, stamp the poisoned positions of the real batch
    L = CE(f(x_real; w_T), y_real)

and the hyper-gradients ∂L/∂x̃_t, ∂L/∂lr_t come from reverse-mode Hessian-vector products
(:func:`hypergradients`), as in the official ``backward``: with ``dw = ∂L/∂w_{t+1}``,
``∂L/∂(x̃_t, lr_t, w_t) = −(∂g_t/∂·)ᵀ dw`` for ``g_t = lr_t ∇w CE_t`` and ``dw ← dw + (∂g_t/∂w_t)ᵀ(−dw)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from doorping.config import DDConfig, Settings
from doorping.dc import IterationStats, derive_seed, trigger_update
from doorping.networks import FlatNet, build_network
from doorping.poison import AttackState

Step = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (images, labels, lr)


class FlatParams:
    """A network's parameters as one flat vector (the official ``ReparamModule``), called functionally."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.names = [n for n, _ in net.named_parameters()]
        self.shapes = [p.shape for _, p in net.named_parameters()]
        self.numels = [p.numel() for _, p in net.named_parameters()]

    def flat(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.net.parameters()])

    def __call__(self, w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params = {n: t.view(s) for n, t, s in zip(self.names, w.split(self.numels), self.shapes, strict=True)}
        return functional_call(self.net, params, (x,))

    def module_with(self, w: torch.Tensor) -> nn.Module:
        """A copy of the network holding the weights ``w`` (detached)."""
        model = copy.deepcopy(self.net)
        torch.nn.utils.vector_to_parameters(w.detach().clone(), model.parameters())
        return model


def xavier_init(net: nn.Module) -> nn.Module:
    """The official ``known_init``: xavier-normal weights (gain 1) and zero biases."""
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(module.weight, gain=1.0)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return net


def fixed_init_net(settings: Settings, shape: tuple[int, int, tuple[int, int]]) -> FlatNet:
    channels, num_classes, im_size = shape
    net = build_network(settings.arch, channels, num_classes, im_size, derive_seed(settings.seed, "dd-init"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(settings.seed, "dd-xavier"))
        return xavier_init(net)


def raw_lr_init(cfg: DDConfig) -> float:
    """ρ with softplus(ρ) = distill_lr."""
    return math.log(math.expm1(cfg.distill_lr))


def make_steps(syn: torch.Tensor, labels: torch.Tensor, raw_lrs: torch.Tensor, cfg: DDConfig) -> list[Step]:
    """The unrolled schedule: data steps 0…S−1 repeated ``distill_epochs`` times, one learnable lr per step."""
    per_step = len(syn) // cfg.distill_steps
    lrs = F.softplus(raw_lrs)
    steps = []
    for t in range(cfg.distill_steps * cfg.distill_epochs):
        s = t % cfg.distill_steps
        steps.append(
            (syn[s * per_step : (s + 1) * per_step], labels[s * per_step : (s + 1) * per_step], lrs[t])
        )
    return steps


def unroll(
    model: FlatParams, w0: torch.Tensor, steps: Sequence[Step]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Forward of the unrolled training: the weights w₀ … w_T (leaves) and the steps g_t = lr_t ∇w CE_t (with graph)."""
    w = w0.detach().requires_grad_(True)
    ws, gws = [w], []
    for x, y, lr in steps:
        loss = F.cross_entropy(model(w, x), y)
        (gw,) = torch.autograd.grad(loss, w, lr, create_graph=True)
        with torch.no_grad():
            w = w.sub(gw).requires_grad_(True)
        ws.append(w)
        gws.append(gw)
    return ws, gws


def hypergradients(
    steps: Sequence[Step], ws: Sequence[torch.Tensor], gws: Sequence[torch.Tensor], meta_loss: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Reverse-mode hyper-gradients (∂L/∂x̃_t, ∂L/∂lr_t) of ``meta_loss`` = L(w_T) (module docstring)."""
    (dw,) = torch.autograd.grad(meta_loss, ws[-1])
    gdata: list[torch.Tensor] = []
    glrs: list[torch.Tensor] = []
    for (x, _, lr), w, gw in reversed(list(zip(steps, ws[:-1], gws, strict=True))):
        dw_w, dx, dlr = torch.autograd.grad(gw, (w, x, lr), grad_outputs=(dw.neg(),))
        gdata.append(dx)
        glrs.append(dlr)
        dw = dw + dw_w
    return gdata[::-1], glrs[::-1]


def replay(model: FlatParams, w0: torch.Tensor, steps: Sequence[Step]) -> torch.Tensor:
    """The distilled training run without graph: w_T from w₀ (DD's evaluation)."""
    w = w0.detach().clone()
    for x, y, lr in steps:
        w = w.requires_grad_(True)
        loss = F.cross_entropy(model(w, x.detach()), y)
        (g,) = torch.autograd.grad(loss, w)
        w = (w - lr.detach() * g).detach()
    return w


def poisoned_positions(indices: torch.Tensor, batch_index: int, batch_size: int) -> torch.Tensor:
    """Batch positions poisoned in batch ``b``: the poison indices in [b·bs, (b+1)·bs), minus b·bs (official)."""
    lo, hi = batch_index * batch_size, (batch_index + 1) * batch_size
    return indices[(indices >= lo) & (indices < hi)] - lo


def dd_iteration(
    it: int,
    settings: Settings,
    attack: AttackState,
    model: FlatParams,
    w0: torch.Tensor,
    syn: torch.Tensor,
    labels: torch.Tensor,
    raw_lrs: torch.Tensor,
    batch: tuple[torch.Tensor, torch.Tensor],
    batch_index: int,
) -> IterationStats:
    """Forward, trigger update on w_T, meta-loss on the (poisoned) real batch, hyper-gradients into
    ``syn.grad`` and ``raw_lrs.grad`` (the caller steps the optimiser)."""
    cfg = settings.dd
    steps = make_steps(syn, labels, raw_lrs, cfg)
    ws, gws = unroll(model, w0, steps)
    stats = IterationStats()
    x_real, y_real = batch[0].clone(), batch[1].clone()
    if attack.attack in ("doorping", "invisible"):
        holder = model.module_with(ws[-1])
        result = trigger_update(holder, attack, settings, "dd")
        stats.updates, stats.steps, stats.trigger_loss = 1, [result.steps], result.last_loss
    if attack.active:
        pos = poisoned_positions(attack.indices, batch_index, cfg.batch_size).to(x_real.device)
        if len(pos):
            x_real[pos] = attack.apply(x_real[pos])
            y_real[pos] = settings.trigger.target
    meta = F.cross_entropy(model(ws[-1], x_real), y_real)
    gdata, glrs = hypergradients(steps, ws, gws, meta)
    outputs = [x for x, _, _ in steps] + [lr for _, _, lr in steps]
    torch.autograd.backward(outputs, gdata + glrs)
    stats.loss = float(meta.detach())
    return stats
