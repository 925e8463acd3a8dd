"""The objectives as pure functions (BYOL loss §2.2, ranking losses §2.4, MAE loss §2.7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

RANK_LOSSES = ("bce", "margin")


def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """ℓ(p, z) = ‖p/‖p‖ − z/‖z‖‖² = 2 − 2·cos(p, z), per row, computed in fp32."""
    p = F.normalize(p.float(), dim=-1)
    z = F.normalize(z.float(), dim=-1)
    return 2.0 - 2.0 * (p * z).sum(dim=-1)


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """L_BYOL = mean ℓ(p1, sg z2) + mean ℓ(p2, sg z1): the symmetrised loss, range [0, 8].

    ``p`` are online predictions of views 1/2, ``z`` the target projections of views 1/2 (gradients stopped).
    """
    return normalized_mse(p1, z2.detach()).mean() + normalized_mse(p2, z1.detach()).mean()


def rank_labels(
    s_first: torch.Tensor, s_second: torch.Tensor, tie_eps: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """y = 1[s_first > s_second] (the first is harder) and the pairs kept (|s1 − s2| ≥ tie_eps)."""
    y = (s_first > s_second).float()
    keep = (s_first - s_second).abs() >= tie_eps if tie_eps > 0 else torch.ones_like(y, dtype=torch.bool)
    return y, keep


def rank_bce(logit: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """RankNet pairwise loss −[y·log σ(d) + (1 − y)·log(1 − σ(d))] on the score difference d, mean over kept."""
    if keep is not None:
        logit, y = logit[keep], y[keep]
    if logit.numel() == 0:
        return logit.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logit.float(), y.float())


def rank_margin(
    r1: torch.Tensor, r2: torch.Tensor, y: torch.Tensor, margin: float, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """max(0, −ỹ·(r1 − r2) + m) with ỹ = 2y − 1, mean over kept pairs (= ``nn.MarginRankingLoss``)."""
    if keep is not None:
        r1, r2, y = r1[keep], r2[keep], y[keep]
    if r1.numel() == 0:
        return r1.sum() * 0.0
    sign = 2.0 * y.float() - 1.0
    return torch.clamp(-sign * (r1.float() - r2.float()) + margin, min=0.0).mean()


def pairwise_accuracy(logit: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean 1[(logit > 0) = y]: how often the head names the harder view."""
    return ((logit > 0).float() == y.float()).float().mean()


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, P·P·C) in row-major patch order (the patch embedding's token order)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def mae_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True
) -> torch.Tensor:
    """MSE on masked patches only; with ``norm_pix`` each target patch is standardised by its own mean/var."""
    target = target.float()
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = ((pred.float() - target) ** 2).mean(dim=-1)
    weight = mask.float()
    return (per_patch * weight).sum() / weight.sum().clamp(min=1.0)
