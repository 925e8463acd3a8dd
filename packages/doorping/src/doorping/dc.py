"""One iteration of Dataset Condensation with gradient matching, with the backdoor hooks (spec §2.6, §2.3).

:func:`dc_iteration` is the single implementation used by the LightningModule, the benchmark and the tests::

    fresh net θ (seeded from (seed, it)), SGD(θ, lr_net)
    for ol in 1..outer_loop:
        L = Σ_c D(∇θ CE(θ; S_c), ∇θ CE(θ; real_c))        real_c: ≤ batch_real images, poisoned ones in class 0
        SGD step on S (lr_img, momentum 0.5)
        stop after the last ol
        train θ on S for inner_loop epochs
        DOORPING / INVISIBLE: update the trigger on θ, re-poison            (outer_loop − 1 updates per iteration)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from doorping.augment import DSAParams, augment_each, augment_pair
from doorping.config import Settings
from doorping.losses import distribution_matching_loss, match_loss
from doorping.networks import FlatNet, build_network
from doorping.neurons import (
    LegacyActivation,
    PrefixActivation,
    UpdateResult,
    active_neurons,
    select_neurons,
    update_invisible_trigger,
    update_trigger,
)
from doorping.poison import AttackState


def derive_seed(*parts: int | str) -> int:
    """A 31-bit seed from the run seed and a purpose (stable across processes, unlike ``hash``)."""
    sequence = np.random.SeedSequence(
        [p if isinstance(p, int) else sum(map(ord, p)) * 7919 + len(p) for p in parts]
    )
    return int(sequence.generate_state(1)[0] & 0x7FFFFFFF)


@dataclass
class IterationStats:
    """What one distillation iteration did (logged per training step)."""

    loss: float = 0.0
    updates: int = 0
    steps: list[int] = field(default_factory=list)
    trigger_loss: float = math.nan

    def as_dict(self) -> dict[str, float]:
        return {
            "loss": self.loss,
            "trigger_updates": float(self.updates),
            "trigger_steps": float(np.mean(self.steps)) if self.steps else 0.0,
            "trigger_loss": self.trigger_loss,
        }


def train_on_synthetic(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int,
    batch: int,
    generator: torch.Generator,
    dsa: DSAParams | None = None,
) -> None:
    """``epochs`` shuffled passes of SGD on (images, labels) (the official ``epoch('train', ...)``); with ``dsa``
    every batch gets per-image DSA, seeded from ``generator`` (the official ``aug=True`` of DSA runs)."""
    net.train()
    n = len(labels)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(net(augment_each(images[idx], dsa, generator)), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def trigger_update(net: FlatNet, attack: AttackState, settings: Settings, method: str) -> UpdateResult:
    """Update the trigger on the trained ``net`` and re-poison (DOORPING §2.3 or INVISIBLE §2.4)."""
    cfg = settings.trigger
    was_training = net.training
    net.eval()
    legacy = cfg.legacy_trigger_loop
    read = LegacyActivation(net, cfg.layer) if legacy else PrefixActivation(net, cfg.layer)
    active = active_neurons(net, read.index, attack.trigger) if cfg.neuron_select == "active" else None
    neurons = select_neurons(read.module, cfg.topk, active)
    if legacy:
        if attack.leaf is None:
            attack.leaf = attack.trigger.detach().clone().requires_grad_(True)
        leaf = attack.leaf
    else:
        leaf = attack.trigger.detach().clone().requires_grad_(True)
    if attack.attack == "doorping":
        result = update_trigger(
            read, leaf, attack.mask, neurons, cfg.alpha, cfg.lr, cfg.max_steps, cfg.threshold,
            attack.bound, attack.reference, attack.mean, attack.std, full_backward=legacy,
            relative=cfg.threshold_mode == "relative",
        )  # fmt: skip
    else:
        official = cfg.legacy_invisible
        steps = cfg.invisible_steps or (50 if method == "dd" else 100)
        lr = cfg.invisible_lr or (0.001 if method == "dd" else 0.08)
        result = update_invisible_trigger(
            read, leaf, neurons, attack.std, cfg.alpha if method == "dd" else 10.0, lr, steps,
            anchor=attack.black() if official else None, detach_target=not official, bound=attack.bound,
            mask=attack.mask, mean=attack.mean,
        )  # fmt: skip
    attack.trigger = leaf.detach().clone()
    if legacy and attack.attack == "doorping":
        attack.repoison_legacy(leaf)
    else:
        attack.repoison()
    net.train(was_training)
    return result


def class_gradients(
    net: nn.Module, images: torch.Tensor, label: int, create_graph: bool
) -> tuple[torch.Tensor, ...]:
    """∇θ CE(net(images), label) for every parameter of ``net``."""
    targets = torch.full((len(images),), label, dtype=torch.long, device=images.device)
    loss = F.cross_entropy(net(images), targets)
    return torch.autograd.grad(loss, list(net.parameters()), create_graph=create_graph)


def dc_iteration(
    it: int,
    settings: Settings,
    attack: AttackState,
    syn: torch.Tensor,
    optimizer_img: torch.optim.Optimizer,
    shape: tuple[int, int, tuple[int, int]],
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
) -> IterationStats:
    """One DC iteration (module docstring). ``syn`` is the (C·ipc)×C×H×W leaf optimised by ``optimizer_img``;
    ``shape`` = (channels, num_classes, im_size)."""
    channels, num_classes, im_size = shape
    outer, inner = settings.loops()
    ipc, dc = settings.ipc, settings.dc
    net = build_network(
        settings.arch, channels, num_classes, im_size, derive_seed(settings.seed, it, "dc-net")
    )
    net = net.to(syn.device)
    net.train()
    optimizer_net = torch.optim.SGD(net.parameters(), lr=dc.lr_net)
    rng = np.random.default_rng([settings.seed, it, 11])
    shuffle = torch.Generator(device="cpu").manual_seed(derive_seed(settings.seed, it, "dc-inner"))
    labels_syn = torch.arange(num_classes, device=syn.device).repeat_interleave(ipc)
    dsa = dc.dsa_params() if dc.dsa else None
    stats = IterationStats()
    total = 0.0
    for ol in range(outer):
        loss = syn.new_zeros(())
        for c in range(num_classes):
            real = attack.sample(c, dc.batch_real, rng)
            syn_c = syn[c * ipc : (c + 1) * ipc]
            # one Siamese transformation for the real and the synthetic batch of class c
            real, syn_c = augment_pair(real, syn_c, derive_seed(settings.seed, it, ol, c, "dsa"), dsa)
            g_real = [g.detach() for g in class_gradients(net, real, c, create_graph=False)]
            g_syn = class_gradients(net, syn_c, c, create_graph=True)
            loss = loss + match_loss(g_syn, g_real, dc.dis_metric)
        optimizer_img.zero_grad()
        backward(loss)
        optimizer_img.step()
        total += float(loss.detach())
        if ol == outer - 1:
            break
        train_on_synthetic(
            net, optimizer_net, syn.detach().clone(), labels_syn, inner, dc.batch_train, shuffle, dsa
        )
        if attack.attack in ("doorping", "invisible"):
            result = trigger_update(net, attack, settings, "dc")
            stats.updates += 1
            stats.steps.append(result.steps)
            stats.trigger_loss = result.last_loss
    stats.loss = total / (num_classes * outer)
    return stats


def dm_iteration(
    it: int,
    settings: Settings,
    attack: AttackState,
    syn: torch.Tensor,
    optimizer_img: torch.optim.Optimizer,
    shape: tuple[int, int, tuple[int, int]],
    backward: Callable[[torch.Tensor], None] = torch.Tensor.backward,
) -> IterationStats:
    """One DM iteration (spec §2.8): a fresh frozen net, ``Σ_c ‖mean φ(real_c) − mean φ(S_c)‖²``, one SGD step.

    DOORPING under DM (proposed): every ``dm_trigger_every`` iterations a fresh surrogate is trained on S for
    ``inner_loop`` epochs, the trigger is updated on it and the poison set re-stamped.
    """
    channels, num_classes, im_size = shape
    ipc, dc = settings.ipc, settings.dc
    net = build_network(
        settings.arch, channels, num_classes, im_size, derive_seed(settings.seed, it, "dm-net")
    )
    net = net.to(syn.device)
    for p in net.parameters():
        p.requires_grad_(False)
    rng = np.random.default_rng([settings.seed, it, 13])
    dsa = dc.dsa_params() if dc.dsa else None
    loss = syn.new_zeros(())
    for c in range(num_classes):
        real = attack.sample(c, dc.batch_real, rng)
        syn_c = syn[c * ipc : (c + 1) * ipc]
        # the same DSA seed for the real and the synthetic batch (spec §2.8)
        real, syn_c = augment_pair(real, syn_c, derive_seed(settings.seed, it, c, "dm-dsa"), dsa)
        loss = loss + distribution_matching_loss(net.embed(real).detach(), net.embed(syn_c))
    optimizer_img.zero_grad()
    backward(loss)
    optimizer_img.step()
    stats = IterationStats(loss=float(loss.detach()) / num_classes)
    every = max(1, dc.dm_trigger_every)
    if attack.attack in ("doorping", "invisible") and (it + 1) % every == 0:
        _, inner = settings.loops() if dc.inner_loop is None else (1, dc.inner_loop)
        surrogate = build_network(
            settings.arch, channels, num_classes, im_size, derive_seed(settings.seed, it, "dm-surrogate")
        ).to(syn.device)
        labels_syn = torch.arange(num_classes, device=syn.device).repeat_interleave(ipc)
        shuffle = torch.Generator(device="cpu").manual_seed(derive_seed(settings.seed, it, "dm-inner"))
        opt = torch.optim.SGD(surrogate.parameters(), lr=dc.lr_net)
        train_on_synthetic(
            surrogate, opt, syn.detach().clone(), labels_syn, inner, dc.batch_train, shuffle, dsa
        )
        result = trigger_update(surrogate, attack, settings, "dm")
        stats.updates, stats.steps, stats.trigger_loss = 1, [result.steps], result.last_loss
    return stats
