"""Objectives (spec §2.5): binary cross-entropy with logits, masked per PEA.

A PEA265-style sample is labelled for one PEA only; its other heads get no loss. Labels are 1 (positive),
0 (negative) or −1 (unlabelled / ignored, e.g. level 1 of the synthetic severities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``L = Σ_{n,k} m_{nk} · BCE(z_{nk}, y_{nk}) / max(1, Σ m)`` with ``m = 1[y ≥ 0]``.

    Returns the scalar loss and the per-head mean losses ``[K]`` (0 for a head without labels in the batch).
    """
    mask = (labels >= 0).to(logits.dtype)
    target = labels.clamp_min(0).to(logits.dtype)
    per_entry = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask
    loss = per_entry.sum() / mask.sum().clamp_min(1.0)
    per_head = per_entry.sum(0) / mask.sum(0).clamp_min(1.0)
    return loss, per_head
