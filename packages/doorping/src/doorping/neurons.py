"""DOORPING's trigger update (spec §2.3) and INVISIBLE's (§2.4): neuron selection, activation, optimisation.

Two ways to read the selected activation, with identical values:

* :class:`PrefixActivation` (default): the layer is resolved to a stack position once and its post-ReLU output is
  a forward through the network prefix only — no hook, no model copy.
* :class:`LegacyActivation` (``legacy_trigger_loop``): the official design, re-created for the benchmark and the
  equivalence test. Every call registers a forward hook on the selected module of the trained net and never
  removes it (DC's ``get_middle_output``), then runs a *new model instance* that carries the trained weights
  (DD's design; ``copy.deepcopy`` also copies the net's hooks, so call i fires i hooks: quadratic cost).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from doorping.networks import prefix_output, resolve_layer
from doorping.trigger import Bound, project

#: ``trigger.neuron_select`` values: ``weight`` (official, spec §2.3.1) or ``active`` (ours, see below)
NEURON_SELECT = ("weight", "active")


def select_neurons(layer: nn.Linear, topk: int, active: torch.Tensor | None = None) -> torch.Tensor:
    """Top-k output neurons of ``layer`` by ``Σ_i |W_{j,i}|`` (spec §2.3.1); ties keep ``torch.topk``'s order.

    ``active`` (ours, ``trigger.neuron_select active``; not in the paper or the official code): a boolean mask of
    the neurons whose post-ReLU output on the trigger is > 0. Active neurons then rank before inactive ones, each
    group in ``Σ|W|`` order, so an inactive neuron — whose update is a no-op (spec §2.3.3) — is chosen only when
    fewer than k neurons are active.
    """
    if topk < 1 or topk > layer.weight.shape[0]:
        raise ValueError(f"topk must lie in 1..{layer.weight.shape[0]}, got {topk}")
    scores = layer.weight.detach().abs().sum(dim=1)
    if active is not None:
        active = active.to(scores.device).reshape(scores.shape).bool()
        scores = torch.where(active, scores, scores - scores.max() - 1.0)  # every inactive score < 0 ≤ active
    return torch.topk(scores, topk).indices


@torch.no_grad()
def active_neurons(net: nn.Sequential, index: int, trigger: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the neurons of stack module ``index`` whose post-ReLU output on ``trigger`` is > 0."""
    return prefix_output(net, index, trigger).reshape(-1) > 0


class PrefixActivation:
    """Post-ReLU output of the selected Linear layer through the network prefix (the fast path)."""

    def __init__(self, net: nn.Sequential, layer: int) -> None:
        self.net = net
        self.index = resolve_layer(net, layer)

    @property
    def module(self) -> nn.Linear:
        return self.net[self.index]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return prefix_output(self.net, self.index, x)


class LegacyActivation(PrefixActivation):
    """The official activation read (hook leak + a new model per call); only for the benchmark and tests."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out: dict[str, torch.Tensor] = {}

        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            out["a"] = output  # the in-place ReLU that follows turns this into the post-ReLU value

        self.net[self.index].register_forward_hook(hook)  # never removed (the official leak)
        model = copy.deepcopy(self.net)  # a new model instance with the current weights (and the hooks)
        model(x)
        return out["a"]


@dataclass
class UpdateResult:
    """What one trigger update did: steps taken (optimiser steps), first and last loss."""

    steps: int
    first_loss: float
    last_loss: float


def doorping_objective(activation: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``MSE(a_K(t), α·a_K(t₀))`` (spec §2.3.3); ``target`` = α·a_K(t₀), fixed during the update."""
    return F.mse_loss(activation, target)


def update_trigger(
    read: Callable[[torch.Tensor], torch.Tensor],
    trigger: torch.Tensor,
    mask: torch.Tensor,
    neurons: torch.Tensor,
    alpha: float = 10.0,
    lr: float = 0.08,
    max_steps: int = 1000,
    threshold: float = 0.5,
    bound: Bound | None = None,
    reference: torch.Tensor | None = None,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    full_backward: bool = False,
    relative: bool = False,
) -> UpdateResult:
    """One DOORPING update of the leaf tensor ``trigger`` in place (spec §2.3.3).

    A fresh ``Adam([t], lr, betas=(0.9, 0.99))``; at each step the loss is computed and checked *before* the
    backward (stop when < ``threshold``); the gradient is multiplied by the mask so only the square changes; the
    bound (if any) is projected after every optimiser step. ``read`` maps the 1×C×H×W trigger to the layer
    output; the caller puts the net in eval mode. ``full_backward`` back-propagates into the network's weights too
    (the official ``loss.backward()``); the default asks autograd for the trigger's gradient only (same value).
    ``relative`` scales the stopping test by the squared target, ``loss < threshold·mean((α·a_K(t₀))²)``, so that
    it does not depend on the activation's scale; an all-zero target (inactive neurons) stops at once in both modes.
    """
    optimizer = torch.optim.Adam([trigger], lr=lr, betas=(0.9, 0.99))
    bound = bound or Bound()
    target: torch.Tensor | None = None
    first = last = float("nan")
    steps = 0
    for step in range(max_steps):
        optimizer.zero_grad()
        activation = read(trigger)[:, neurons]
        if target is None:
            target = alpha * activation.detach()
            if relative:
                threshold = threshold * float(target.pow(2).mean())
        loss = doorping_objective(activation, target)
        last = float(loss.detach())
        if step == 0:
            first = last
        if last < threshold or (relative and threshold == 0.0):
            break
        if full_backward:
            loss.backward()
            trigger.grad.mul_(mask)
        else:
            (grad,) = torch.autograd.grad(loss, trigger)
            trigger.grad = grad * mask
        optimizer.step()
        steps += 1
        if bound.kind != "none":
            project(trigger, bound, mask, reference, mean, std)
    optimizer.zero_grad(set_to_none=True)
    return UpdateResult(steps, first, last)


def invisible_fit(activation: torch.Tensor, scale: float, target: torch.Tensor | None) -> torch.Tensor:
    """INVISIBLE's activation term: ``MSE(a, target)`` with the detached ``target = s·a(t₀)`` (package default), or
    the official ``MSE(a, s·a)`` with a live target (``target=None``), which equals ``(s − 1)²·mean(a²)``."""
    if target is None:
        return F.mse_loss(activation, scale * activation)
    return F.mse_loss(activation, target)


def update_invisible_trigger(
    read: Callable[[torch.Tensor], torch.Tensor],
    trigger: torch.Tensor,
    neurons: torch.Tensor,
    std: torch.Tensor,
    scale: float = 10.0,
    lr: float = 0.08,
    steps: int = 100,
    anchor: torch.Tensor | None = None,
    detach_target: bool = True,
    bound: Bound | None = None,
    mask: torch.Tensor | None = None,
    mean: torch.Tensor | None = None,
) -> UpdateResult:
    """One INVISIBLE update (spec §2.4): ``c·MSE(a_K, s·a_K(t₀)) + Σ_{|t−anchor|>τ} |t − anchor|``.

    c = 0.8 (the official schedule multiplies c = 1 by 0.8 at step 0 only); τ = 1/min σ, shrunk by 0.9 whenever
    ``max|t − anchor| < τ``. The default detaches the target (α·a_K(t₀)) and anchors the regulariser at a zero
    perturbation; ``detach_target=False`` with ``anchor`` = the normalised black image is the official objective,
    whose gradient equals that of ``(s − 1)²·mean(a²)``. As in the official code the network reads the trigger
    tensor itself.
    """
    optimizer = torch.optim.Adam([trigger], lr=lr, betas=(0.9, 0.99))
    anchor = torch.zeros_like(trigger) if anchor is None else anchor
    tau = 1.0 / float(std.min())
    c = 0.8
    bound = bound or Bound()
    target = None
    first = last = float("nan")
    for step in range(steps):
        optimizer.zero_grad()
        activation = read(trigger)[:, neurons]
        if detach_target and target is None:
            target = scale * activation.detach()
        fit = invisible_fit(activation, scale, target if detach_target else None)
        deviation = (trigger - anchor).abs()
        loss = c * fit + deviation[deviation > tau].sum()
        if float(deviation.detach().max()) < tau:
            tau *= 0.9
        last = float(loss.detach())
        if step == 0:
            first = last
        loss.backward()
        optimizer.step()
        if bound.kind != "none":
            project(trigger, bound, mask if mask is not None else torch.ones_like(trigger), torch.zeros_like(trigger),
                    mean, std, additive=True)  # fmt: skip
    optimizer.zero_grad(set_to_none=True)
    return UpdateResult(steps, first, last)


def hook_count(module: nn.Module) -> int:
    """Forward hooks registered on ``module`` and all its submodules (the leak check of spec §6.4)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())
