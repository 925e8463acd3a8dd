"""Finite-horizon planning and exact policy evaluation (spec §2.9–2.10).

Steps are 0-indexed in code: ``Q[h]`` is the spec's Q_{h+1}; ``V[H] = 0``. ``Q[h] = R + P V[h+1]`` with
``R(s, a) = Σ_s' P(s'|s,a) r(s,a,s')`` computed from the *model's own* P (known rewards, spec §2.7).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def expected_reward(P: np.ndarray, r: np.ndarray) -> np.ndarray:
    """R_f(s, a) = Σ_s' P_f(s'|s,a) r(s,a,s') for one model (S,A,S) or a batch (M,S,A,S)."""
    return np.einsum("...ijk,ijk->...ij", P, r)


def backward_induction(P: np.ndarray, R: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Optimal Q (H,S,A) and V (H+1,S) of one model: Q_h = R + P V_{h+1}, V_h = max_a Q_h, V_{H+1} = 0."""
    S, A = R.shape
    Q = np.zeros((H, S, A))
    V = np.zeros((H + 1, S))
    for h in range(H - 1, -1, -1):
        Q[h] = R + P @ V[h + 1]
        V[h] = Q[h].max(-1)
    return Q, V


def value_iteration(P: np.ndarray, R: np.ndarray, H: int) -> np.ndarray:
    """V*_1 by finite-horizon value iteration written with explicit loops (independent cross-check).

    Iterates W_k(s) = max_a [R(s,a) + Σ_s' P(s'|s,a) W_{k−1}(s')] for k = 1..H from W_0 = 0; W_H = V*_1.
    """
    S, A = R.shape
    W = [0.0] * S
    for _ in range(H):
        new = []
        for s in range(S):
            best = -np.inf
            for a in range(A):
                row = P[s, a]
                total = float(R[s, a])
                for s2 in np.flatnonzero(row):
                    total += float(row[s2]) * W[s2]
                best = max(best, total)
            new.append(best)
        W = new
    return np.asarray(W)


def plan(P: np.ndarray, R: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched backward induction over M models: P (M,S,A,S), R (M,S,A) → Q (M,H,S,A), V (M,H+1,S)."""
    M, S, A, _ = P.shape
    flat = P.reshape(M, S * A, S)
    Q = np.empty((M, H, S, A))
    V = np.zeros((M, H + 1, S))
    for h in range(H - 1, -1, -1):
        Q[:, h] = R + np.matmul(flat, V[:, h + 1, :, None]).reshape(M, S, A)
        V[:, h] = Q[:, h].max(-1)
    return Q, V


def plan_reference(P: np.ndarray, R: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark baseline of spec §2.10: a Python loop over models, each a loop over h with one einsum."""
    M, S, A, _ = P.shape
    Q = np.empty((M, H, S, A))
    V = np.zeros((M, H + 1, S))
    for m in range(M):
        for h in range(H - 1, -1, -1):
            Q[m, h] = R[m] + np.einsum("ijk,k->ij", P[m], V[m, h + 1])
            V[m, h] = Q[m, h].max(-1)
    return Q, V


def block_diagonal(models: list[sp.csr_matrix]) -> sp.csr_matrix:
    """Stack M sparse (S·A, S) transition matrices into one block-diagonal (M·S·A, M·S) CSR matrix."""
    return sp.block_diag(models, format="csr")


def row_max(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """max over the (short) last axis by A − 1 element-wise maxima: much faster than ``x.max(-1)`` for A ≈ 4–6."""
    np.copyto(out, x[:, 0])
    for a in range(1, x.shape[1]):
        np.maximum(out, x[:, a], out=out)
    return out


def plan_sparse(P_block: sp.csr_matrix, R: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Batched sparse backup: one (M·S·A)×(M·S) CSR mat-vec per step for all M models (spec §2.10).

    ``R`` has shape (M, S, A). Returns Q (M,H,S,A) and V (M,H+1,S) like :func:`plan`.
    """
    M, S, A = R.shape
    Q = np.empty((H, M * S * A))
    V = np.zeros((H + 1, M * S))
    R_flat = R.reshape(-1)
    for h in range(H - 1, -1, -1):
        q = P_block @ V[h + 1]
        q += R_flat
        Q[h] = q
        row_max(q.reshape(M * S, A), out=V[h])
    # step-major storage keeps every backup contiguous; return (M, H, S, A) / (M, H+1, S) views
    return Q.reshape(H, M, S, A).transpose(1, 0, 2, 3), V.reshape(H + 1, M, S).transpose(1, 0, 2)


def greedy_policy(Q: np.ndarray) -> np.ndarray:
    """Deterministic greedy policy (H,S,A) one-hot from Q (H,S,A); ties go to the lowest action index."""
    H, S, A = Q.shape
    policy = np.zeros((H, S, A))
    best = Q.argmax(-1)
    np.put_along_axis(policy, best[..., None], 1.0, axis=-1)
    return policy


def evaluate_policy(P: np.ndarray, R: np.ndarray, policy: np.ndarray) -> np.ndarray:
    """Exact V^π (H+1,S) of a time-dependent, possibly stochastic policy (H,S,A) on the true model."""
    H = policy.shape[0]
    S = R.shape[0]
    V = np.zeros((H + 1, S))
    for h in range(H - 1, -1, -1):
        Q = R + P @ V[h + 1]
        V[h] = np.einsum("ij,ij->i", policy[h], Q)
    return V


def initial_value(V1: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """V_1(μ) = Σ_s μ(s) V_1(s); works for one value vector (S,) or a batch (M,S)."""
    return V1 @ mu
