"""Fixtures: MedMNIST-style npz files of every shape variant, ImageFolder / CSV trees, a tiny BOLT setup."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from bolt_ssl.models import ViTConfig
from bolt_ssl.perturb import PerturbConfig
from bolt_ssl.pretrain import HeadsConfig, MAEConfig, PretrainNets, RankConfig
from PIL import Image

TINY_VIT = ViTConfig(img_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)


def make_npz(path: Path, counts=(12, 6, 8), size=28, rgb=True, label_shape="n1", n_labels=5, seed=0,
             drop_key: str | None = None) -> Path:  # fmt: skip
    """A MedMNIST-style file: ``label_shape`` "n1" → (N, 1), "n" → (N,), "multi" → (N, n_labels) 0/1."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), counts, strict=True):
        shape = (n, size, size, 3) if rgb else (n, size, size)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        if label_shape == "multi":
            arrays[f"{split}_labels"] = rng.integers(0, 2, size=(n, n_labels)).astype(np.uint8)
        else:
            labels = np.arange(n) % n_labels
            arrays[f"{split}_labels"] = labels[:, None] if label_shape == "n1" else labels
    if drop_key:
        arrays.pop(drop_key)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def npz_factory(tmp_path: Path):
    def make(name: str = "retinamnist.npz", **kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return make_npz(path, **kwargs)

    return make


@pytest.fixture
def folder_tree(tmp_path: Path) -> Path:
    """root/{train,val,test}/<class>/*.png: 3 classes × 6 PNGs per split (colour, 20×24 px)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    for split in ("train", "val", "test"):
        for c, name in enumerate(("benign", "malignant", "other")):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(6):
                img = np.full((20, 24, 3), 40 * c, dtype=np.uint8) + rng.integers(
                    0, 30, (20, 24, 3), dtype=np.uint8
                )
                Image.fromarray(img).save(d / f"{i}.png")
    return root


@pytest.fixture
def isic_csv(tmp_path: Path) -> tuple[Path, Path]:
    """An ISIC-2019-style one-hot CSV (``image`` + MEL/NV/BCC) with .jpg images named without extension."""
    images = tmp_path / "isic"
    images.mkdir()
    rows = []
    for i in range(30):
        Image.fromarray(np.full((10, 10, 3), 8 * i, dtype=np.uint8)).save(images / f"ISIC_{i:07d}.jpg")
        onehot = [0.0, 0.0, 0.0]
        onehot[i % 3] = 1.0
        rows.append({"image": f"ISIC_{i:07d}", "MEL": onehot[0], "NV": onehot[1], "BCC": onehot[2]})
    path = tmp_path / "ISIC_2019_Training_GroundTruth.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "MEL", "NV", "BCC"])
        writer.writeheader()
        writer.writerows(rows)
    return path, images


@pytest.fixture
def aptos_csv(tmp_path: Path) -> tuple[Path, Path]:
    """An APTOS-2019-style CSV (``id_code``, ``diagnosis`` 0–4) with PNGs in train_images/."""
    images = tmp_path / "train_images"
    images.mkdir()
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id_code", "diagnosis"])
        for i in range(25):
            Image.fromarray(np.full((12, 16, 3), 9 * i, dtype=np.uint8)).save(images / f"id{i:03d}.png")
            writer.writerow([f"id{i:03d}", i % 5])
    return path, images


@pytest.fixture
def tiny_nets():
    """Factory of small :class:`PretrainNets` (16-px 3-channel ViT, 32-d, 2 blocks; heads 32/16)."""

    def make(method: str = "bolt", perturb: PerturbConfig | None = None, rank: RankConfig | None = None,
             seed: int = 0) -> PretrainNets:  # fmt: skip
        torch.manual_seed(seed)
        return PretrainNets(method, TINY_VIT, HeadsConfig(32, 16), MAEConfig(decoder_dim=16, decoder_depth=1,
                            decoder_heads=2), perturb or PerturbConfig(), rank or RankConfig())  # fmt: skip

    return make


@pytest.fixture
def images16() -> torch.Tensor:
    return torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(3))
