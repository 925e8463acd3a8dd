"""Native readers on tiny fixtures, offline errors and the ../shared/data loaders (spec §6.16)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from doorping.datasets import (
    CIFAR10_CLASSES,
    NORMALISATION,
    load_cifar10_subset,
    load_dataset,
    load_mnist_offline,
    load_native,
    read_cifar_batch,
    read_idx,
    read_jpeg_folders,
    read_stl_binary,
    read_svhn_mat,
)

from paperlab_core.data import OfflineError
from paperlab_core.errors import UserError


def _idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def write_mnist(folder: Path, n: int = 10, compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10
    suffix = ".gz" if compress else ""
    for prefix in ("train", "t10k"):
        _idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        _idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


def test_dataset_registry_matches_the_cli_choices() -> None:
    from doorping import cli, config, trigger

    assert cli.METHOD_CHOICES == config.METHODS
    assert cli.ATTACK_CHOICES == trigger.ATTACKS


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_and_mnist_loader(tmp_path: Path, compress: bool) -> None:
    _, labels = write_mnist(tmp_path / "MNIST" / "raw", compress=compress)
    assert np.array_equal(read_idx(tmp_path / "MNIST" / "raw" / f"t10k-labels-idx1-ubyte{'.gz' if compress else ''}"),
                          labels)  # fmt: skip
    data = load_native("mnist", tmp_path, download=False)
    assert data.train_x.shape == (10, 1, 32, 32) and data.test_x.shape == (10, 1, 32, 32)
    assert data.train_y.tolist() == labels.tolist()
    mean, std = NORMALISATION["mnist"]
    assert (
        data.train_x.min() >= (0 - mean[0]) / std[0] - 1e-5
        and data.train_x.max() <= (1 - mean[0]) / std[0] + 1e-5
    )
    assert data.raw_max == 255


def test_idx_reader_rejects_corrupt_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")
    with pytest.raises(UserError, match="bad"):
        read_idx(tmp_path / "bad")
    (tmp_path / "junk").write_bytes(b"hello world, not idx")
    with pytest.raises(UserError, match="not an idx"):
        read_idx(tmp_path / "junk")


def test_cifar_pickle_reader(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, size=(10, 3072), dtype=np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": data, "labels": list(range(10))}, handle)
    x, y = read_cifar_batch(folder / "test_batch")
    assert x.shape == (10, 3, 32, 32) and y.tolist() == list(range(10))
    assert np.array_equal(x[3, 1], data[3, 1024:2048].reshape(32, 32))  # channel-major rows
    full = load_native("cifar10", tmp_path, download=False)
    assert full.train_x.shape == (50, 3, 32, 32) and full.class_names[0] == "airplane"
    mean, std = NORMALISATION["cifar10"]
    pixel = (data[3, 1024] / 255 - mean[1]) / std[1]
    assert full.test_x[3, 1, 0, 0].item() == pytest.approx(pixel, abs=1e-5)


def test_svhn_mat_reader_maps_label_10_to_0(tmp_path: Path) -> None:
    import scipy.io

    x = np.random.default_rng(2).integers(0, 256, size=(32, 32, 3, 10), dtype=np.uint8)
    y = np.array([[10], [1], [2], [3], [4], [5], [6], [7], [8], [9]])
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    images, labels = read_svhn_mat(tmp_path / "train_32x32.mat")
    assert images.shape == (10, 3, 32, 32) and labels.tolist() == list(range(10))
    assert np.array_equal(images[4, 2], x[:, :, 2, 4])


def test_stl_binary_reader_is_column_major(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(2, 3, 96, 96), dtype=np.uint8)
    np.transpose(x, (0, 1, 3, 2)).tofile(tmp_path / "test_X.bin")  # stored column-major
    np.array([1, 10], dtype=np.uint8).tofile(tmp_path / "test_y.bin")
    images, labels = read_stl_binary(tmp_path / "test_X.bin", tmp_path / "test_y.bin")
    assert np.array_equal(images, x) and labels.tolist() == [0, 9]


def test_jpeg_folders(tmp_path: Path) -> None:
    from PIL import Image

    for name in CIFAR10_CLASSES[:2]:
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((32, 32, 3), 40 * i, dtype=np.uint8)).save(
                tmp_path / name / f"{i:04d}.jpg"
            )
    images, labels, names = read_jpeg_folders(tmp_path, CIFAR10_CLASSES[:2])
    assert (
        images.shape == (6, 3, 32, 32)
        and labels.tolist() == [0, 0, 0, 1, 1, 1]
        and names[:2] == ["0000", "0001"]
    )


@pytest.mark.parametrize("name", ["mnist", "fashionmnist", "cifar10", "cifar100", "svhn", "stl10"])
def test_missing_files_offline_give_one_line_errors(tmp_path: Path, name: str) -> None:
    with pytest.raises(OfflineError) as info:
        load_native(name, tmp_path)  # torchvision's download is refused by the network guard
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message


def test_digits_split_and_normalisation(digits) -> None:
    assert digits.train_x.shape == (1297, 1, 8, 8) and digits.test_x.shape == (500, 1, 8, 8)
    counts = torch.bincount(digits.test_y, minlength=10).float()
    totals = counts + torch.bincount(digits.train_y, minlength=10).float()
    assert (counts - totals * 500 / 1797).abs().max() <= 1.0  # stratified
    assert digits.train_x.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert digits.train_x.std().item() == pytest.approx(1.0, abs=1e-4)
    assert digits.raw_max == 16


@pytest.mark.data
def test_shared_mnist_and_cifar_subset_counts(shared_data: Path) -> None:
    mnist = load_mnist_offline(shared_data)
    assert len(mnist.train_y) + len(mnist.test_y) == 10_000
    assert len(mnist.test_y) == 2000 and mnist.train_x.shape[1:] == (1, 32, 32)
    total = torch.bincount(torch.cat([mnist.train_y, mnist.test_y]), minlength=10).tolist()
    assert total == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    cifar = load_cifar10_subset(shared_data)
    assert len(cifar.train_y) == 1600 and len(cifar.test_y) == 400
    assert torch.bincount(cifar.test_y).tolist() == [40] * 10
    assert load_dataset("mnist-offline", shared_data).name == "mnist-offline"
