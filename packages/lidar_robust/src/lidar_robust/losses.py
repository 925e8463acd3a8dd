"""Segmentation objectives: cross-entropy (class 0 ignored) + Lovász-softmax (Berman et al., CVPR 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def lovasz_grad(sorted_truth: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing order (Alg. 1)."""
    total = sorted_truth.sum()
    intersection = total - sorted_truth.cumsum(0)
    union = total + (1.0 - sorted_truth).cumsum(0)
    jaccard = 1.0 - intersection / union
    if sorted_truth.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax(probs: torch.Tensor, labels: torch.Tensor, ignore: int = 0) -> torch.Tensor:
    """Mean over classes present in ``labels`` of ⟨sorted errors |1[y=c] − p_c|, Lovász gradient⟩ (Eq. 9–12)."""
    keep = labels != ignore
    probs, labels = probs[keep], labels[keep]
    if labels.numel() == 0:
        return probs.sum() * 0.0
    losses = []
    for c in torch.unique(labels).tolist():
        truth = (labels == c).to(probs.dtype)
        errors = (truth - probs[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, lovasz_grad(truth[order])))
    return torch.stack(losses).mean()


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor, lovasz_weight: float = 1.0) -> torch.Tensor:
    """CE (ignore 0) + ``lovasz_weight`` × Lovász-softmax over classes 1..19 (equal weights by default)."""
    if bool((labels != 0).any()):
        ce = F.cross_entropy(logits, labels, ignore_index=0)
    else:
        ce = logits.sum() * 0.0
    if lovasz_weight == 0:
        return ce
    return ce + lovasz_weight * lovasz_softmax(torch.softmax(logits.float(), 1), labels)
