"""TIM, the temporal interpolation model (Zhou, Zhao & Pietikäinen, CVPR 2011), spec §2.4.

A clip X = [x_1 … x_n] (d × n, frames as columns) is embedded on the path graph P_n; the graph's non-trivial
Laplacian eigenvectors have the closed form (eq. TIM-2)

    y_k(t) = sin(π k t + π (n − k) / (2n)),   k = 1..n−1,   t_i = i/n,   λ_k = 2 − 2 cos(π k / n),

a linear map W = (Q Qᵀ)⁻¹ Q Yᵀ links the PCA coordinates Q = Σ Vᵀ of the centred clip to them (TIM-3), and new
frames are synthesised at T positions t'_j uniform on [1/n, 1]: x'_j = U (Wᵀ)⁻¹ y(t'_j) + μ (TIM-4).

When rank(X_c) = n − 1 this reduces to fixed weights (spec §2.4, derived): X' = X A with
A = B + (1/n) 1 (1ᵀ − 1ᵀ B), B = (2/n) Yᵀ Y' — one GEMM per clip, no SVD (``method="weights"``, the default).
``method="svd"`` is the literal published algorithm; rank-deficient clips (static frames at 500 fps) are
detected from the singular values and handled by a documented ``fallback`` — never NaN.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

METHODS = ("weights", "svd")
FALLBACKS = ("weights", "ridge", "linear", "dedup")
RANK_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@dataclass(frozen=True)
class TIMInfo:
    """How a clip was interpolated: ``method`` asked for, ``fallback`` used (None when the SVD path was
    well-conditioned or not used), ``rank_ratio`` = σ_{n−1}/σ_1 (SVD path only)."""

    n: int
    length: int
    method: str
    fallback: str | None = None
    rank_ratio: float | None = None


def output_positions(n: int, length: int) -> np.ndarray:
    """t'_j = 1/n + (j−1)(1 − 1/n)/(T−1), j = 1..T (uniform on [1/n, 1]; T = n gives the input positions)."""
    if length < 2:
        raise ValueError(f"TIM needs an output length of at least 2, got {length}")
    return 1.0 / n + np.arange(length) * (1.0 - 1.0 / n) / (length - 1)


def path_graph_eigenvectors(n: int, positions: np.ndarray | None = None) -> np.ndarray:
    """Y ((n−1) × len(positions)): y_k(t) for k = 1..n−1 at ``positions`` (default t_i = i/n, i = 1..n)."""
    t = np.arange(1, n + 1) / n if positions is None else np.asarray(positions, np.float64)
    k = np.arange(1, n)[:, None]
    return np.sin(np.pi * k * t[None, :] + np.pi * (n - k) / (2 * n))


def path_graph_eigenvalues(n: int) -> np.ndarray:
    """λ_k = 2 − 2 cos(π k / n), k = 1..n−1."""
    return 2.0 - 2.0 * np.cos(np.pi * np.arange(1, n) / n)


def weights_at(n: int, positions: np.ndarray) -> np.ndarray:
    """A (n × len(positions)) with X A = TIM's frames at ``positions``: A = B + (1/n) 1 (1ᵀ − 1ᵀ B),
    B = (2/n) Yᵀ Y' (the closed form of spec §2.4; uses Y Yᵀ = (n/2) I)."""
    positions = np.asarray(positions, np.float64)
    if n == 1:
        return np.ones((1, len(positions)))
    y = path_graph_eigenvectors(n)
    b = (2.0 / n) * y.T @ path_graph_eigenvectors(n, positions)
    return b + np.ones((n, 1)) @ (1.0 - b.sum(axis=0, keepdims=True)) / n


@functools.lru_cache(maxsize=256)
def _weights(n: int, length: int) -> np.ndarray:
    a = weights_at(n, output_positions(n, length)) if n > 1 else np.ones((1, length))
    a.setflags(write=False)
    return a


def tim_weights(n: int, length: int) -> np.ndarray:
    """A(n, T) (n × T, float64, cached, read-only): TIM's T output frames are X A."""
    if n < 1:
        raise ValueError(f"TIM needs at least one frame, got {n}")
    return _weights(int(n), int(length))


def _as_tensor(frames: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    if isinstance(frames, torch.Tensor):
        return frames, False
    return torch.from_numpy(np.ascontiguousarray(frames)), True


def _finish(out: torch.Tensor, like: torch.Tensor, numpy: bool) -> np.ndarray | torch.Tensor:
    if not like.is_floating_point():
        info = torch.iinfo(like.dtype)
        out = out.round().clamp(info.min, info.max)
    out = out.to(like.dtype)
    return out.numpy() if numpy else out


def _compute_dtype(frames: torch.Tensor) -> torch.dtype:
    return torch.float64 if frames.dtype == torch.float64 else torch.float32


def tim(
    frames: np.ndarray | torch.Tensor,
    length: int,
    method: str = "weights",
    fallback: str = "weights",
    return_info: bool = False,
    axis: int = 0,
) -> np.ndarray | torch.Tensor | tuple[np.ndarray | torch.Tensor, TIMInfo]:
    """Interpolate ``frames`` (n frames along ``axis``; any frame shape) to ``length`` frames.

    ``method="weights"`` (default): the closed form (one GEMM); ``"svd"``: the published algorithm with the
    rank check σ_{n−1} ≤ tol·σ_1 (1e-10 in float64, 1e-5 otherwise) and ``fallback`` ∈ ``weights`` (the closed
    form, TIM's continuous extension to rank-deficient clips), ``ridge`` (W = (QQᵀ + εI)⁻¹ QYᵀ,
    ε = 1e-6·tr(QQᵀ)/(n−1)), ``linear`` (piecewise-linear in frame index at t'_j·n − 1) or ``dedup`` (drop
    consecutive duplicate frames, then TIM). ``length == n`` returns the input unchanged; ``n == 1`` repeats the
    frame. Integer inputs are rounded and clipped back to their dtype; numpy in → numpy out; the device follows
    the input.
    """
    if method not in METHODS:
        raise ValueError(f"TIM method must be one of {METHODS}, got {method!r}")
    if fallback not in FALLBACKS:
        raise ValueError(f"TIM fallback must be one of {FALLBACKS}, got {fallback!r}")
    x, numpy = _as_tensor(frames)
    x = x.movedim(axis, 0)
    n = x.shape[0]
    info = TIMInfo(n, length, method)
    if n == length:
        out = frames
    elif n == 1:
        out = _restore(x.expand(length, *x.shape[1:]).clone(), axis, numpy)
    elif method == "weights":
        out = _restore(_finish(_gemm(x, length), x, False), axis, numpy)
    else:
        y, info = tim_svd(x, output_positions(n, length), fallback)
        out = _restore(_finish(y, x, False), axis, numpy)
    return (out, info) if return_info else out


def _restore(out: torch.Tensor, axis: int, numpy: bool) -> np.ndarray | torch.Tensor:
    out = out.movedim(0, axis)
    return out.numpy() if numpy else out


GEMM_BLOCK_BYTES = 1 << 20
"""CPU, non-float input: the n × d frames are converted and multiplied in column blocks of about this many bytes
of float (cache-sized), instead of materialising the whole float copy (a fresh n·d·4-byte buffer, whose page
faults and memory traffic cost more than the GEMM; docs/lab-notebook.md §3)."""


def _gemm(x: torch.Tensor, length: int) -> torch.Tensor:
    """Aᵀ X with X = (n, d) flattened frames → (T, *frame_shape) in the compute dtype."""
    n = x.shape[0]
    dtype = _compute_dtype(x)
    a = torch.tensor(tim_weights(n, length), dtype=dtype, device=x.device)
    flat = x.reshape(n, -1)
    if flat.dtype == dtype or x.device.type != "cpu":
        return (a.T @ flat.to(dtype)).reshape(length, *x.shape[1:])
    d = flat.shape[1]
    block = max(1, min(d, GEMM_BLOCK_BYTES // (4 * n)))
    out = torch.empty(length, d, dtype=dtype)
    buffer = torch.empty(n, block, dtype=dtype)
    at = a.T.contiguous()
    for start in range(0, d, block):
        stop = min(d, start + block)
        part = buffer[:, : stop - start]
        part.copy_(flat[:, start:stop])
        torch.mm(at, part, out=out[:, start:stop])
    return out.reshape(length, *x.shape[1:])


def tim_float(frames: np.ndarray | torch.Tensor, length: int) -> torch.Tensor:
    """The weights path without rounding: (n, *frame_shape) of any dtype → (T, *frame_shape) float32 (float64
    for float64 input) tensor on the input's device; uint8 frames stay uint8 until the blocked GEMM."""
    x, _ = _as_tensor(frames)
    n = x.shape[0]
    if n < 1:
        raise ValueError("TIM needs at least one frame, got 0")
    dtype = _compute_dtype(x)
    if n == length:
        return x.to(dtype)
    if n == 1:
        return x.to(dtype).expand(length, *x.shape[1:]).clone()
    return _gemm(x, length)


def tim_batch(clips: torch.Tensor, length: int) -> torch.Tensor:
    """Batched weights path: (B, n, *frame_shape) → (B, T, *frame_shape), one batched GEMM (same n per batch).

    Float inputs keep their dtype; integer inputs are computed in float32 and rounded back."""
    b, n = clips.shape[:2]
    if n == length:
        return clips
    dtype = _compute_dtype(clips)
    a = torch.tensor(tim_weights(n, length), dtype=dtype, device=clips.device)
    out = torch.matmul(a.T, clips.reshape(b, n, -1).to(dtype)).reshape(b, length, *clips.shape[2:])
    return _finish(out, clips, False)


def tim_svd(
    x: torch.Tensor, positions: np.ndarray, fallback: str = "weights"
) -> tuple[torch.Tensor, TIMInfo]:
    """The published algorithm at arbitrary ``positions`` (float output), via the n × n Gram matrix X_cᵀ X_c
    (d ≫ n), with the rank check and ``fallback``. ``positions = i/n`` reconstructs the input."""
    n = x.shape[0]
    length = len(positions)
    dtype = _compute_dtype(x)
    flat = x.reshape(n, -1).to(dtype).T  # d × n, frames as columns
    mu = flat.mean(dim=1, keepdim=True)
    centred = flat - mu
    gram = centred.T @ centred
    evals, evecs = torch.linalg.eigh(gram)  # ascending
    evals, evecs = evals.flip(0)[: n - 1].clamp_min(0), evecs.flip(1)[:, : n - 1]
    sigma = evals.sqrt()
    ratio = float(sigma[-1] / sigma[0]) if float(sigma[0]) > 0 else 0.0
    tol = RANK_TOL.get(dtype, 1e-5)
    y = torch.as_tensor(path_graph_eigenvectors(n), dtype=dtype, device=x.device)
    y_new = torch.as_tensor(path_graph_eigenvectors(n, positions), dtype=dtype, device=x.device)
    shape = (length, *x.shape[1:])
    if ratio > tol:
        u = centred @ evecs / sigma  # U_{n−1}: d × (n−1)
        q = sigma[:, None] * evecs.T  # Q = Σ Vᵀ: (n−1) × n
        w = torch.linalg.solve(q @ q.T, q @ y.T)  # W = (QQᵀ)⁻¹ Q Yᵀ
        z = torch.linalg.solve(w.T, y_new)  # z_j = (Wᵀ)⁻¹ y(t'_j)
        out = (u @ z + mu).T.reshape(shape)
        return out, TIMInfo(n, length, "svd", None, ratio)
    if fallback == "weights":
        a = torch.as_tensor(weights_at(n, positions), dtype=dtype, device=x.device)
        out = (a.T @ x.reshape(n, -1).to(dtype)).reshape(shape)
    elif fallback == "ridge":
        keep = sigma > tol * sigma[0]
        u = torch.where(keep, 1.0 / torch.where(keep, sigma, torch.ones_like(sigma)), torch.zeros_like(sigma))
        u = centred @ evecs * u  # pseudo-inverse convention: null directions contribute nothing
        q = sigma[:, None] * evecs.T
        qq = q @ q.T
        eps = 1e-6 * torch.trace(qq) / (n - 1)
        w = torch.linalg.solve(qq + eps * torch.eye(n - 1, dtype=dtype, device=x.device), q @ y.T)
        z = torch.linalg.lstsq(w.T, y_new).solution
        out = (u @ z + mu).T.reshape(shape)
    elif fallback == "linear":
        out = linear_interpolate(x.to(dtype), positions)
    else:
        diffs = (x[1:] != x[:-1]).reshape(n - 1, -1).any(dim=1)
        keep = torch.cat([torch.ones(1, dtype=torch.bool, device=x.device), diffs])
        kept = x[keep]
        if kept.shape[0] == 1:
            out = kept.to(dtype).expand(shape).clone()
        else:
            out = tim_svd(kept.to(dtype), positions, "weights")[0]
    out = torch.nan_to_num(out)
    return out, TIMInfo(n, length, "svd", fallback, ratio)


def linear_interpolate(x: torch.Tensor, positions: np.ndarray) -> torch.Tensor:
    """Piecewise-linear interpolation in frame index at t·n − 1 (0-based) for t in ``positions``."""
    n = x.shape[0]
    pos = torch.as_tensor(np.asarray(positions) * n - 1, dtype=x.dtype, device=x.device).clamp(0, n - 1)
    lo = pos.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo.to(x.dtype)).reshape(-1, *([1] * (x.dim() - 1)))
    return x[lo] * (1 - frac) + x[hi] * frac
