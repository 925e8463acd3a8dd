"""Shared fixtures of the ccgc tests (test files cannot import each other under importlib mode)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def dense_filter() -> Callable[[np.ndarray, np.ndarray, int], np.ndarray]:
    """Dense numpy reference of X̃ = (D̂^{-1/2}(A+I)D̂^{-1/2})^t X (self-loops of A removed first)."""

    def reference(adj: np.ndarray, x: np.ndarray, t: int) -> np.ndarray:
        a = adj.astype(np.float64).copy()
        np.fill_diagonal(a, 0.0)
        a_hat = a + np.eye(a.shape[0])
        d = a_hat.sum(1)
        h = a_hat / np.sqrt(d)[:, None] / np.sqrt(d)[None, :]
        out = x.astype(np.float64)
        for _ in range(t):
            out = h @ out
        return out

    return reference


@pytest.fixture
def planetoid_fixture(tmp_path: Path) -> Path:
    """A 10-node CiteSeer-format raw set: 6 'all' nodes, test.index {9, 6, 7} with a gap at node 8."""
    raw = tmp_path / "CiteSeer" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    allx = sp.csr_matrix((rng.random((6, 5)) > 0.5).astype(np.float32))
    ally = np.eye(3, dtype=np.int64)[[0, 1, 2, 0, 1, 2]]
    tx = sp.csr_matrix(np.array([[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0]], dtype=np.float32))
    ty = np.eye(3, dtype=np.int64)[[2, 0, 1]]
    graph = {0: [1, 2], 1: [0], 2: [0, 3], 3: [2, 3], 4: [5], 5: [4], 6: [9], 7: [], 8: [], 9: [6]}
    objects = {"x": allx[:2], "y": ally[:2], "allx": allx, "ally": ally, "tx": tx, "ty": ty, "graph": graph}
    for suffix, obj in objects.items():
        with open(raw / f"ind.citeseer.{suffix}", "wb") as handle:
            pickle.dump(obj, handle)
    (raw / "ind.citeseer.test.index").write_text("9\n6\n7\n")
    return tmp_path


@pytest.fixture
def adgc_fixture(tmp_path: Path) -> Path:
    """A 6-node ADGC-format triple (``toy``) with one self-loop."""
    folder = tmp_path / "bat"
    folder.mkdir()
    adj = np.zeros((6, 6), dtype=np.int32)
    for i, j in [(0, 1), (1, 2), (3, 4), (4, 5), (2, 3)]:
        adj[i, j] = adj[j, i] = 1
    adj[0, 0] = 1
    feat = np.eye(4)[adj.sum(1)].astype(np.float64)
    np.save(folder / "bat_adj.npy", adj)
    np.save(folder / "bat_feat.npy", feat)
    np.save(folder / "bat_label.npy", np.array([0, 0, 0, 1, 1, 1], dtype=np.int32))
    return tmp_path
