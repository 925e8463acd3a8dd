"""Class-imbalance remedies (spec §2.6) as pure functions and one loss module.

n_c = training count of class c, N = Σ n_c, K classes:
- ``ce``: −log p_y;
- ``inv_freq``: weighted CE, w_c = N / (K n_c);
- ``cb`` (Cui et al., CVPR 2019): weighted CE, w_c ∝ (1 − β) / (1 − β^{n_c}), normalised so Σ_c w_c = K.
  The batch loss of both is the batch mean of the per-sample losses w_{y_i} CE_i (``weight_reduction="mean"``:
  Cui et al.'s per-sample loss, eq. 5, averaged as their code's ``softmax_cross_entropy`` with per-sample
  weights does); ``"weighted_mean"`` divides by Σ_i w_{y_i} instead (PyTorch's ``cross_entropy(weight=…)``,
  dfme ≤ 0.3);
- ``focal`` (Lin et al., ICCV 2017): −α_y (1 − p_y)^γ log p_y;
- ``balanced_sampler``: plain CE; the data module draws samples with weight n_{y_i}^{-power};
- ``ldam_drw`` (Cao et al., NeurIPS 2019): CE on s·(z − Δ_y e_y), Δ_c = C / n_c^{1/4} with max_c Δ_c = 0.5,
  deferred re-weighting with ``cb`` weights (β = 0.9999, batch loss Σ w CE / Σ w as in Cao et al.'s code) from
  ``drw_start`` of the epoch budget; as in Cao et
  al.'s code the head is then a cosine classifier (normalised features and weights) so s = 30 is a sensible scale;
- ``logit_adjust`` (Menon et al., ICLR 2021; balanced softmax for τ = 1): CE on z + τ log π, plain z at inference.

Classes with no training sample get weight 0 (they cannot be learned) and no margin.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IMBALANCE = ("ce", "inv_freq", "cb", "focal", "balanced_sampler", "ldam_drw", "logit_adjust")
FOCAL_ALPHA = ("none", "cb")
WEIGHT_REDUCTIONS = ("mean", "weighted_mean")


def inverse_frequency_weights(counts: Sequence[int]) -> np.ndarray:
    """w_c = N / (K n_c) (0 for empty classes)."""
    n = np.asarray(counts, np.float64)
    k = len(n)
    return np.divide(n.sum(), k * n, out=np.zeros_like(n), where=n > 0)


def class_balanced_weights(counts: Sequence[int], beta: float = 0.999) -> np.ndarray:
    """Effective-number weights w_c ∝ (1 − β)/(1 − β^{n_c}), normalised so Σ_c w_c = K over the present
    classes (Cui et al. 2019, eq. 4 and §3.1); 0 for empty classes."""
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = np.asarray(counts, np.float64)
    present = n > 0
    effective = 1.0 - np.power(beta, n)
    w = np.divide(1.0 - beta, effective, out=np.zeros_like(n), where=present) if beta > 0 else present * 1.0
    return w * present.sum() / w.sum()


def ldam_margins(counts: Sequence[int], max_margin: float = 0.5) -> np.ndarray:
    """Δ_c = C / n_c^{1/4} with C chosen so that max_c Δ_c = ``max_margin`` (0 for empty classes)."""
    n = np.asarray(counts, np.float64)
    raw = np.divide(1.0, np.power(n, 0.25), out=np.zeros_like(n), where=n > 0)
    return raw * (max_margin / raw.max())


def sampler_weights(labels: Sequence[int], power: float = 1.0, num_classes: int | None = None) -> np.ndarray:
    """Per-sample draw weights n_{y_i}^{-power} (power 1: class-balanced; 0.5: the square-root variant)."""
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels, minlength=num_classes or 0).astype(np.float64)
    return np.power(counts[labels], -power)


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0, alpha: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over the batch of −α_y (1 − p_y)^γ log p_y."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1.0 - log_p.exp()) ** gamma) * log_p
    if alpha is not None:
        loss = alpha[targets] * loss
    return loss.mean()


def weighted_ce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    reduction: str = "weighted_mean",
) -> torch.Tensor:
    """Σ_i w_{y_i} CE_i / Σ_i w_{y_i} (``weighted_mean``, PyTorch's convention) or (1/B) Σ_i w_{y_i} CE_i (``mean``)."""
    if reduction == "mean" and weights is not None:
        return (weights[targets] * F.cross_entropy(logits, targets, reduction="none")).mean()
    return F.cross_entropy(logits, targets, weight=weights)


class ImbalanceLoss(nn.Module):
    """The training loss of one ``method`` of :data:`IMBALANCE` for given training class ``counts``.

    ``forward(logits, targets, epoch)``; ``epoch`` matters only for LDAM-DRW (re-weighting starts at
    ``drw_epoch``). Logits of ``ldam_drw`` are expected to be cosines (the module's head takes care of it).
    """

    def __init__(
        self,
        method: str,
        counts: Sequence[int],
        cb_beta: float = 0.999,
        focal_gamma: float = 2.0,
        focal_alpha: str = "none",
        ldam_max_margin: float = 0.5,
        ldam_scale: float = 30.0,
        drw_epoch: int = 0,
        drw_beta: float = 0.9999,
        logit_tau: float = 1.0,
        weight_reduction: str = "mean",
    ) -> None:
        super().__init__()
        if weight_reduction not in WEIGHT_REDUCTIONS:
            raise ValueError(f"weight_reduction must be one of {WEIGHT_REDUCTIONS}, got {weight_reduction!r}")
        if method not in IMBALANCE:
            raise ValueError(f"unknown imbalance method {method!r} (methods: {', '.join(IMBALANCE)})")
        if focal_alpha not in FOCAL_ALPHA:
            raise ValueError(f"focal_alpha must be one of {FOCAL_ALPHA}, got {focal_alpha!r}")
        counts = np.asarray(counts, np.float64)
        self.method = method
        self.focal_gamma = focal_gamma
        self.ldam_scale = ldam_scale
        self.drw_epoch = drw_epoch
        self.weight_reduction = weight_reduction
        weights = None
        if method == "inv_freq":
            weights = inverse_frequency_weights(counts)
        elif method == "cb" or (method == "focal" and focal_alpha == "cb"):
            weights = class_balanced_weights(counts, cb_beta)
        elif method == "ldam_drw":
            weights = class_balanced_weights(counts, drw_beta)
        self.register_buffer(
            "weights", None if weights is None else torch.tensor(weights, dtype=torch.float32)
        )
        margins = ldam_margins(counts, ldam_max_margin) if method == "ldam_drw" else np.zeros(len(counts))
        self.register_buffer("margins", torch.tensor(margins, dtype=torch.float32))
        prior = counts / counts.sum()
        log_prior = np.log(np.where(prior > 0, prior, 1.0)) + np.where(prior > 0, 0.0, -1e4)
        self.register_buffer("log_prior", torch.tensor(logit_tau * log_prior, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, epoch: int = 0) -> torch.Tensor:
        if self.method in ("ce", "balanced_sampler"):
            return F.cross_entropy(logits, targets)
        if self.method in ("inv_freq", "cb"):
            return weighted_ce(logits, targets, self.weights, self.weight_reduction)
        if self.method == "focal":
            return focal_loss(logits, targets, self.focal_gamma, self.weights)
        if self.method == "logit_adjust":
            return F.cross_entropy(logits + self.log_prior.to(logits.dtype), targets)
        margin = F.one_hot(targets, logits.shape[-1]).to(logits.dtype) * self.margins.to(logits.dtype)
        weights = self.weights if epoch >= self.drw_epoch else None
        return weighted_ce(self.ldam_scale * (logits - margin), targets, weights)
