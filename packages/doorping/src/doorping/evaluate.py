"""Evaluation of a distilled set (spec §2.10): fresh nets trained on it, clean test accuracy and attack success.

* CTA: accuracy on the clean test set.
* ASR, non-target (``asr``, primary): triggered test images whose true label ≠ target, classified as the target.
* ASR, baadd-style (``asr_all``): the same over *all* test images (it includes the target class, so a clean model
  scores ≈ P(target)·CTA ≈ 0.1 on 10 balanced classes).

Triggered inputs are built out of place: the cached clean test tensors are never modified.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from doorping.augment import DSAParams, augment_each
from doorping.config import EvalConfig
from doorping.dc import derive_seed
from doorping.networks import build_network


@dataclass
class Scores:
    """CTA and both ASRs of one model."""

    cta: float
    asr: float
    asr_all: float

    def as_dict(self) -> dict[str, float]:
        return {"cta": self.cta, "asr": self.asr, "asr_all": self.asr_all}


def attack_success(predictions: torch.Tensor, labels: torch.Tensor, target: int) -> tuple[float, float]:
    """(non-target ASR, baadd-style ASR) from predictions on triggered inputs and their true labels."""
    hit = predictions == target
    keep = labels != target
    asr = float(hit[keep].float().mean()) if bool(keep.any()) else float("nan")
    return asr, float(hit.float().mean())


@torch.inference_mode()
def predict(net: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """Arg-max predictions of ``net`` on ``x`` (eval mode, batched)."""
    was = net.training
    net.eval()
    out = torch.cat([net(x[i : i + batch]).argmax(-1) for i in range(0, len(x), batch)])
    net.train(was)
    return out


def score_model(
    net: nn.Module,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    apply_trigger: Callable[[torch.Tensor], torch.Tensor] | None,
    target: int,
) -> Scores:
    """CTA on (test_x, test_y) and, with a trigger, both ASRs (spec §2.10)."""
    cta = float((predict(net, test_x) == test_y).float().mean())
    if apply_trigger is None:
        return Scores(cta, float("nan"), float("nan"))
    triggered = torch.cat([apply_trigger(test_x[i : i + 1024]) for i in range(0, len(test_x), 1024)])
    asr, asr_all = attack_success(predict(net, triggered), test_y, target)
    return Scores(cta, asr, asr_all)


def train_eval_net(
    net: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: EvalConfig, generator: torch.Generator
) -> nn.Module:
    """The official ``evaluate_synset`` training: SGD(lr, momentum 0.9, wd 5e-4), epochs 0..E inclusive, lr ×0.1
    (new optimiser) after epoch E//2 + 1, shuffled batches of ``cfg.batch``; no augmentation unless ``cfg.dsa``
    (per-image DSA of every batch, seeded from ``generator``)."""
    dsa = DSAParams(strategy=cfg.dsa_strategy) if cfg.dsa else None
    images, labels = images.detach(), labels.detach()
    lr = cfg.lr
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    decay_at = cfg.epochs // 2 + 1
    net.train()
    n = len(labels)
    for epoch in range(cfg.epochs + 1):
        order = torch.randperm(n, generator=generator).to(images.device)
        for start in range(0, n, cfg.batch):
            idx = order[start : start + cfg.batch]
            loss = F.cross_entropy(net(augment_each(images[idx], dsa, generator)), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch == decay_at:
            lr *= 0.1
            optimizer = torch.optim.SGD(
                net.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
    return net


def evaluate_one(
    index: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    arch: str,
    cfg: EvalConfig,
    seed: int,
    apply_trigger: Callable[[torch.Tensor], torch.Tensor] | None,
    target: int,
    num_classes: int,
) -> tuple[Scores, nn.Module]:
    """Train evaluation net ``index`` (seeded from (seed, index)) on the distilled set and score it."""
    net = build_network(
        arch, images.shape[1], num_classes, tuple(images.shape[2:]), derive_seed(seed, index, "eval")
    )
    net = net.to(images.device)
    generator = torch.Generator(device="cpu").manual_seed(derive_seed(seed, index, "eval-order"))
    train_eval_net(net, images, labels, cfg, generator)
    return score_model(net, test_x, test_y, apply_trigger, target), net
