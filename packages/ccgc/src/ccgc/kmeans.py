"""Chunked k-means in pure torch (spec §2.4): never N×N and never N×K×D.

``kmeans`` has two initialisation modes: k-means++ with ``n_init`` restarts keeping the lowest inertia (default),
and the official code's rule (``legacy_init=True``): 20 candidate sets of K distinct random points, keep the one
with the smallest *sum over all N×K point–centre distances*, then a single Lloyd run. In both modes an empty
cluster is re-seeded with the point farthest from its centre (the official code produces a NaN centre instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from paperlab_core.errors import ConfigError


@dataclass
class KMeansResult:
    """Labels (N,), centres (K, D), ``dis`` (N, K) squared distances of the last assignment, inertia."""

    labels: torch.Tensor
    centers: torch.Tensor
    dis: torch.Tensor
    inertia: float
    n_iter: int


def pairwise_sq_dists(x: torch.Tensor, centers: torch.Tensor, chunk_size: int = 65536) -> torch.Tensor:
    """‖x_i − c_k‖² = ‖x_i‖² − 2 x_i·c_k + ‖c_k‖², clamped at 0, computed in row chunks (N × K output)."""
    c_sq = (centers * centers).sum(1)
    out = torch.empty(x.size(0), centers.size(0), dtype=x.dtype, device=x.device)
    for start in range(0, x.size(0), chunk_size):
        block = x[start : start + chunk_size]
        d = (block * block).sum(1, keepdim=True) - 2.0 * block @ centers.T + c_sq
        out[start : start + chunk_size] = d.clamp_min_(0.0)
    return out


def _kmeanspp_init(x: torch.Tensor, k: int, generator: torch.Generator, chunk_size: int) -> torch.Tensor:
    n = x.size(0)
    first = int(torch.randint(n, (1,), generator=generator, device=generator.device))
    centers = [x[first]]
    closest = pairwise_sq_dists(x, x[first : first + 1], chunk_size).squeeze(1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # all points coincide with chosen centres: take any point not yet chosen
            idx = int(torch.randint(n, (1,), generator=generator, device=generator.device))
        else:
            probs = (closest / total).to(torch.float64)
            idx = int(torch.multinomial(probs, 1, generator=generator))
        centers.append(x[idx])
        closest = torch.minimum(closest, pairwise_sq_dists(x, x[idx : idx + 1], chunk_size).squeeze(1))
    return torch.stack(centers)


def legacy_candidates(
    x: torch.Tensor, k: int, generator: torch.Generator, n_candidates: int = 20
) -> list[torch.Tensor]:
    """The official code's 20 candidate index sets, each K distinct random points."""
    n = x.size(0)
    return [torch.randperm(n, generator=generator, device=generator.device)[:k] for _ in range(n_candidates)]


def legacy_init(
    x: torch.Tensor, k: int, generator: torch.Generator, n_candidates: int = 20, chunk_size: int = 65536
) -> torch.Tensor:
    """Official initialisation: the candidate with the smallest sum of all N×K squared distances."""
    best, best_score = None, None
    for idx in legacy_candidates(x, k, generator, n_candidates):
        score = float(pairwise_sq_dists(x, x[idx], chunk_size).sum())
        if best_score is None or score < best_score:
            best, best_score = idx, score
    assert best is not None
    return x[best].clone()


def lloyd(
    x: torch.Tensor,
    centers: torch.Tensor,
    max_iter: int = 500,
    tol: float = 1e-4,
    chunk_size: int = 65536,
    spherical: bool = False,
) -> KMeansResult:
    """Lloyd iterations from ``centers``; stop when (Σ_k ‖c_k − c_k^prev‖)² < tol or after ``max_iter``.

    ``dis`` is the distance matrix of the last assignment (to the centres before the final update), as in the
    official code. With ``spherical=True`` rows of ``x`` must be unit-norm: assignment by maximum cosine and
    centres are re-normalised after each update (``dis`` then holds 2 − 2·cos).
    """
    k = centers.size(0)
    centers = centers.clone()
    n_iter = 0
    while True:
        if spherical:
            dis = (2.0 - 2.0 * (x @ centers.T)).clamp_min_(0.0)
        else:
            dis = pairwise_sq_dists(x, centers, chunk_size)
        labels = dis.argmin(1)
        previous = centers
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        centers = sums / counts.clamp_min(1).unsqueeze(1)
        empty = (counts == 0).nonzero().flatten()
        if empty.numel():
            own = dis.gather(1, labels.unsqueeze(1)).squeeze(1).clone()
            for cluster in empty.tolist():
                far = int(own.argmax())
                centers[cluster] = x[far]
                own[far] = -1.0
        if spherical:
            centers = torch.nn.functional.normalize(centers, dim=1)
        shift = float((centers - previous).norm(dim=1).sum())
        n_iter += 1
        if shift**2 < tol or n_iter > max_iter:
            break
    inertia = float(dis.gather(1, labels.unsqueeze(1)).sum())
    return KMeansResult(labels=labels, centers=centers, dis=dis, inertia=inertia, n_iter=n_iter)


def kmeans(
    x: torch.Tensor,
    k: int,
    n_init: int = 4,
    max_iter: int = 500,
    tol: float = 1e-4,
    generator: torch.Generator | None = None,
    legacy_init_rule: bool = False,
    chunk_size: int = 65536,
    spherical: bool = False,
) -> KMeansResult:
    """k-means with squared Euclidean distances (or spherical k-means); see the module docstring."""
    x = x.detach()
    n = x.size(0)
    if k < 1:
        raise ConfigError(f"number of clusters must be >= 1, got {k}")
    if k > n:
        raise ConfigError(f"cannot form {k} clusters from {n} points (K must be <= N)")
    if not torch.isfinite(x).all():
        raise ConfigError("k-means input contains NaN or infinite values")
    if generator is None:
        generator = torch.Generator(device=x.device).manual_seed(0)
    if spherical:
        x = torch.nn.functional.normalize(x, dim=1)
    if legacy_init_rule:
        return lloyd(
            x, legacy_init(x, k, generator, chunk_size=chunk_size), max_iter, tol, chunk_size, spherical
        )
    best: KMeansResult | None = None
    for _ in range(max(1, n_init)):
        init = _kmeanspp_init(x, k, generator, chunk_size)
        if spherical:
            init = torch.nn.functional.normalize(init, dim=1)
        result = lloyd(x, init, max_iter, tol, chunk_size, spherical)
        if best is None or result.inertia < best.inertia:
            best = result
    assert best is not None
    return best
