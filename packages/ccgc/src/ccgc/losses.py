"""CCGC objectives as pure functions (spec §2.5–§2.7, §2.11).

* ``warmup_identity_loss``: L_warm = mean((Z1 Z2ᵀ − I)²) over all N² entries (official warm-up, epochs 0–50),
  computed from d×d Gram matrices: ‖Z1Z2ᵀ − I‖_F² = ⟨Z1ᵀZ1, Z2ᵀZ2⟩_F − 2 Σ_i ⟨z1_i, z2_i⟩ + N.
* ``scgc_loss``: MSE(Z1Z2ᵀ, Â) with Â = A + I, via the same identity and a sparse sum over the edges of Â.
* ``high_confidence_mask``: the ≈τ·N nodes closest to their cluster centre (§2.5).
* ``ccgc_loss``: cluster-guided loss L = L_pos + α·L_neg (§2.6).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from paperlab_core.errors import ConfigError


def _gram_contraction(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """⟨Z1ᵀZ1, Z2ᵀZ2⟩_F = ‖Z1 Z2ᵀ‖_F² in O(N·d²) time and O(d²) memory.

    The d×d Grams are formed in the input dtype; their Frobenius contraction is accumulated in float64.
    """
    g1 = z1.T @ z1
    g2 = z2.T @ z2
    return (g1.double() * g2.double()).sum()


def warmup_identity_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """mean((Z1 Z2ᵀ − I)²) without any N×N tensor (official warm-up loss; spec §2.7).

    Does not require unit-norm rows. Returned in the dtype of ``z1``.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.size(0)
    diag = (z1 * z2).sum().double()
    total = _gram_contraction(z1, z2) - 2.0 * diag + n
    return (total / (n * n)).to(z1.dtype)


def warmup_identity_loss_linear(
    x: torch.Tensor,
    weight1: torch.Tensor,
    bias1: torch.Tensor,
    weight2: torch.Tensor,
    bias2: torch.Tensor,
    eps: float = 1e-12,
) -> torch.Tensor:
    """The warm-up loss of two *linear* encoders z_v = rownorm(x W_vᵀ + b_v) without forming Z (N × d).

    With a = [x, 1] (N × (D+1)) and B_v = [W_vᵀ; b_vᵀ] ((D+1) × d): ‖z_v,i‖⁻¹ = s_v,i = (a_iᵀ B_v B_vᵀ a_i)^{-1/2},
    ⟨z1_i, z2_i⟩ = s1_i s2_i a_iᵀ M a_i with M = B1 B2ᵀ, and ⟨Z1ᵀZ1, Z2ᵀZ2⟩_F = tr(G1 M G2 Mᵀ) with
    G_v = aᵀ diag(s_v²) a. Cost O(N·D² + D²·d) instead of O(N·D·d + N·d²): exact, and much cheaper when D ≪ d
    (e.g. 128-d features, 500-d embeddings). Same value and gradients as :func:`warmup_identity_loss`.
    """
    n = x.size(0)
    a = torch.cat([x, torch.ones(n, 1, dtype=x.dtype, device=x.device)], dim=1)
    b1 = torch.cat([weight1.T, bias1.unsqueeze(0)], dim=0)
    b2 = torch.cat([weight2.T, bias2.unsqueeze(0)], dim=0)
    m = b1 @ b2.T

    def inv_norm(b: torch.Tensor) -> torch.Tensor:
        sq = ((a @ (b @ b.T)) * a).sum(1).clamp_min(0.0)
        return 1.0 / sq.sqrt().clamp_min(eps)

    s1, s2 = inv_norm(b1), inv_norm(b2)
    diag = (((a @ m) * a).sum(1) * s1 * s2).sum().double()
    g1 = a.T @ (a * (s1 * s1).unsqueeze(1))
    g2 = a.T @ (a * (s2 * s2).unsqueeze(1))
    gram = ((g1 @ m).double() * (m @ g2).double()).sum()  # tr(G1 M G2 Mᵀ), G2 symmetric
    total = gram - 2.0 * diag + n
    return (total / (n * n)).to(x.dtype)


def dense_warmup_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """The official dense form mean((Z1 Z2ᵀ − I)²): O(N²) memory; reference for tests and benchmarks."""
    s = z1 @ z2.T
    eye = torch.eye(z1.size(0), dtype=z1.dtype, device=z1.device)
    return F.mse_loss(s, eye)


def scgc_loss(z1: torch.Tensor, z2: torch.Tensor, edge_index_hat: torch.Tensor) -> torch.Tensor:
    """MSE(Z1Z2ᵀ, Â) over all N² entries without N×N (SCGC baseline; spec §2.11).

    ``edge_index_hat`` lists the coalesced nonzeros of Â = A + I (self-loops exactly once per node):
    ‖Z1Z2ᵀ − Â‖_F² = ⟨Z1ᵀZ1, Z2ᵀZ2⟩_F − 2 Σ_{(i,j)∈Â} ⟨z1_i, z2_j⟩ + nnz(Â).
    """
    n = z1.size(0)
    row, col = edge_index_hat
    edge_sum = (z1[row] * z2[col]).sum().double()
    total = _gram_contraction(z1, z2) - 2.0 * edge_sum + row.numel()
    return (total / (n * n)).to(z1.dtype)


def high_confidence_mask(dis: torch.Tensor, tau: float) -> torch.Tensor:
    """H = {i : conf_i < sort(conf)[⌊N·τ⌋]}, conf_i = min_k dis[i, k] (spec §2.5, official rule, strict).

    τ is the fraction kept (larger τ ⇒ more nodes). τ = 1 keeps every node.
    """
    if not 0.0 < tau <= 1.0:
        raise ConfigError(f"threshold tau must lie in (0, 1], got {tau}")
    conf = dis.min(1).values
    n = conf.numel()
    index = int(n * tau)
    if index >= n:
        return torch.ones(n, dtype=torch.bool, device=dis.device)
    threshold = torch.sort(conf).values[index]
    return conf < threshold


POS_NORMALIZATIONS = ("pairs", "clusters")


def _randperm(n: int, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(n, generator=generator, device=device)


class CCGCLoss(NamedTuple):
    """Total loss, its two parts, the number K' of clusters used and whether the epoch must be skipped."""

    loss: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    clusters_used: int
    skipped: bool


def ccgc_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    pseudo_labels: torch.Tensor,
    high_conf: torch.Tensor,
    alpha: float = 0.5,
    num_clusters: int | None = None,
    pos_subsample: float = 0.8,
    generator: torch.Generator | None = None,
    skip_first_cluster: bool = False,
    shuffle_pairs: bool = True,
    pos_normalization: str = "clusters",
) -> CCGCLoss:
    """Cluster-guided contrastive loss L = L_pos + α·L_neg (spec §2.6, official code).

    For every used cluster k with high-confidence members H_k:
    positives pair Z1[a_j] with Z2[b_j], a and b two independent random subsets of H_k of size ⌊ρ·|H_k|⌋
    (ρ = ``pos_subsample``; with ``shuffle_pairs=False`` both are the first ⌊ρ·|H_k|⌋ members in index order,
    i.e. a fixed pairing); L_pos = (1/K) Σ_k Σ_j (2 − 2⟨Z1[a_j], Z2[b_j]⟩), divided by the configured K
    (``pos_normalization="clusters"``, this function's default: the paper's and official code's loss, variant
    ``paper``). ``pos_normalization="pairs"`` divides the same sum by the number P of positive pairs instead (a
    mean in [0, 4], independent of N; variant ``stable``, the default of ``CCGCConfig``/``ccgc train``; see the
    README: with the sum, α·L_neg ≤ α is outweighed by a factor ≈ P/K and the embedding collapses on Cora).
    Centres C^v_k = rownorm(mean_{i∈H_k} Z^v_i); S = C¹C²ᵀ with a zeroed diagonal; L_neg = mean(S²) over K'².
    ``skip_first_cluster`` reproduces the official loop that never visits the smallest label present in H.
    The epoch is ``skipped`` (no gradient step) when fewer than 2 clusters occur in H or when L_pos = 0.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if pos_normalization not in POS_NORMALIZATIONS:
        raise ValueError(f"pos_normalization must be one of {POS_NORMALIZATIONS}, got {pos_normalization!r}")
    if pseudo_labels.numel() != z1.size(0) or high_conf.numel() != z1.size(0):
        raise ValueError("pseudo_labels and high_conf need one entry per node")
    idx = high_conf.nonzero().flatten()
    labels = pseudo_labels[idx]
    present = torch.unique(labels)
    k_total = int(num_clusters) if num_clusters is not None else int(present.numel())
    zero = z1.sum() * 0.0
    if present.numel() < 2:
        return CCGCLoss(zero, zero, zero, int(present.numel()), True)
    used = present[1:] if skip_first_cluster else present
    pos_terms = []
    num_pairs = 0
    centers1, centers2 = [], []
    for cluster in used.tolist():
        members = idx[labels == cluster]
        m = int(members.numel() * pos_subsample)
        if m > 0:
            if shuffle_pairs:
                a = members[_randperm(members.numel(), generator)[:m].to(members.device)]
                b = members[_randperm(members.numel(), generator)[:m].to(members.device)]
            else:
                a = b = members[:m]
            pos_terms.append((2.0 - 2.0 * (z1[a] * z2[b]).sum(1)).sum())
            num_pairs += m
        centers1.append(z1[members].mean(0))
        centers2.append(z2[members].mean(0))
    divisor = k_total if pos_normalization == "clusters" else num_pairs
    pos = torch.stack(pos_terms).sum() / divisor if pos_terms else zero
    c1 = F.normalize(torch.stack(centers1), dim=1)
    c2 = F.normalize(torch.stack(centers2), dim=1)
    s = c1 @ c2.T
    s = s - torch.diag_embed(torch.diagonal(s))
    neg = (s * s).mean()
    skipped = bool(pos.detach() == 0)
    return CCGCLoss(pos + alpha * neg, pos, neg, int(used.numel()), skipped)
