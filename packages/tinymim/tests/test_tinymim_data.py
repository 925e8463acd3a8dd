"""Data: embedded generators, real-format fixtures (ImageFolder, CIFAR pickle/JPEG, MNIST idx), augmentations."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from tinymim import augment, datasets
from tinymim.data import TinyMIMDataModule, low_label_indices

from paperlab_core.data import OfflineError


def test_generators_are_deterministic_per_seed_and_index():
    a, b = datasets.still_crop(3, 7), datasets.still_crop(3, 7)
    assert np.array_equal(a, b) and a.shape == (3, 32, 32)
    assert not np.array_equal(a, datasets.still_crop(3, 8))
    img1, label1 = datasets.shape_image(0, 13)
    img2, label2 = datasets.shape_image(0, 13)
    assert np.array_equal(img1, img2) and label1 == label2 == 3
    x, y = datasets.shapes10(20, seed=1)
    assert x.shape == (20, 3, 32, 32) and sorted(set(y.tolist())) == list(range(10))
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_digits_variants_and_low_label_split():
    x8, y8, t8, _ = datasets.digits(8)
    x16, _, _, _ = datasets.digits(16)
    assert x8.shape == (1297, 3, 8, 8) and t8.shape[0] == 500 and x16.shape[-1] == 16
    idx = low_label_indices(y8, 20, seed=0)
    assert len(idx) == 200 and torch.bincount(y8[idx]).tolist() == [20] * 10
    assert torch.equal(idx, low_label_indices(y8, 20, seed=0))


def _write_imagefolder(root):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(folder / "a.png")


def test_imagefolder_fixture_and_missing_root_error(tmp_path):
    _write_imagefolder(tmp_path)
    dm = TinyMIMDataModule(
        dataset="imagefolder", root=str(tmp_path), mode="finetune", img_size=16, batch_size=2
    )
    images, _labels = next(iter(dm.train_dataloader()))
    assert images.shape == (2, 3, 16, 16) and dm.num_classes == 2
    dm.trainer = None
    views = TinyMIMDataModule(dataset="imagefolder", root=str(tmp_path), img_size=16, batch_size=2)
    batch = next(iter(views.train_dataloader()))
    out = views.on_after_batch_transfer(batch, 0)
    assert out["teacher"].shape == out["student"].shape == (2, 3, 16, 16)
    with pytest.raises(FileNotFoundError, match="train/<class>"):
        TinyMIMDataModule(dataset="imagefolder", root=str(tmp_path / "nope")).setup()


def test_cifar_pickle_fixture_and_offline_error(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    batch = {"data": rng.integers(0, 255, (10, 3072), dtype=np.uint8), "labels": list(range(10))}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(base / name, "wb") as handle:
            pickle.dump(batch, handle)
    with open(base / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": list(datasets.CIFAR10_CLASSES)}, handle)
    images, labels = datasets.cifar_pickle(tmp_path, "cifar10", train=True)
    assert images.shape == (50, 3, 32, 32) and labels[:10].tolist() == list(range(10))
    expected = torch.from_numpy(batch["data"][0].reshape(3, 32, 32)).float() / 255
    assert torch.allclose(images[0], expected)
    with pytest.raises(OfflineError, match="cifar-10-batches-py"):
        datasets.cifar_pickle(tmp_path / "empty", "cifar10")


def test_cifar_jpeg_subset_fixture_split(tmp_path):
    rng = np.random.default_rng(0)
    for cls in datasets.CIFAR10_CLASSES:
        folder = tmp_path / cls
        folder.mkdir()
        for number in (0, 159, 160):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                folder / f"{number:04d}.jpg"
            )
    train_x, _train_y, test_x, test_y = datasets.cifar_jpeg_subset(tmp_path)
    assert train_x.shape == (20, 3, 32, 32) and test_x.shape == (10, 3, 32, 32)
    assert torch.bincount(test_y).tolist() == [1] * 10
    (tmp_path / "cat" / "bad.jpg").write_bytes(b"x")
    with pytest.raises(ValueError, match="bad.jpg"):
        datasets.cifar_jpeg_subset(tmp_path)


def test_mnist_idx_fixture(tmp_path):
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    header = (2051).to_bytes(4, "big") + b"".join(v.to_bytes(4, "big") for v in (3, 28, 28))
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(header + images.tobytes())
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([4, 5, 6]))
    x, y = datasets.mnist_test(tmp_path)
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [4, 5, 6]
    assert torch.allclose(x[0, 0, 2:30, 2:30], torch.from_numpy(images[0]).float() / 255)
    with pytest.raises(OfflineError, match="t10k-images"):
        datasets.mnist_test(tmp_path / "missing")


@pytest.mark.data
def test_shared_cifar_subset_split(shared_data):
    train_x, train_y, test_x, _test_y = datasets.cifar_jpeg_subset(
        shared_data / "images" / "cifar10_test_jpg"
    )
    assert train_x.shape == (1600, 3, 32, 32) and test_x.shape == (400, 3, 32, 32)
    assert torch.bincount(train_y).tolist() == [160] * 10


def test_augmentations_shapes_identity_and_flip():
    images = torch.rand(3, 3, 8, 8)
    full = torch.tensor([[0.5, 0.5, 1.0, 1.0]]).repeat(3, 1)
    same = augment.crop_and_flip(images, full, torch.zeros(3, dtype=torch.bool), 8)
    assert torch.allclose(same, images, atol=1e-5)
    flipped = augment.crop_and_flip(images, full, torch.ones(3, dtype=torch.bool), 8)
    assert torch.allclose(flipped, images.flip(-1), atol=1e-5)
    boxes = augment.random_resized_crop_boxes(1000, (0.2, 1.0), generator=torch.Generator().manual_seed(0))
    area = boxes[:, 2] * boxes[:, 3]
    assert area.max() <= 1.0 + 1e-6 and area.min() >= 0.15
    assert (boxes[:, 0] - boxes[:, 2] / 2 >= -1e-6).all() and (
        boxes[:, 0] + boxes[:, 2] / 2 <= 1 + 1e-6
    ).all()
    shifted = augment.random_shift(images, 1, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    jittered = augment.color_jitter(images, generator=torch.Generator().manual_seed(0))
    assert jittered.shape == images.shape and not torch.allclose(jittered, images)
    assert torch.equal(augment.color_jitter(images, 0, 0, 0), images)


def test_distill_views_share_crop_and_jitter_student_only():
    dm = TinyMIMDataModule(dataset="digits32", batch_size=4)
    images = torch.rand(4, 3, 32, 32)
    dm.generator.manual_seed(0)
    views = dm.distill_views(images)
    dm_plain = TinyMIMDataModule(dataset="digits32", batch_size=4, student_color_jitter=False)
    dm_plain.generator.manual_seed(0)
    plain = dm_plain.distill_views(images)
    assert torch.allclose(views["teacher"], plain["teacher"])
    assert torch.allclose(plain["teacher"], plain["student"])
    assert not torch.allclose(views["teacher"], views["student"])


def test_rand_augment_requires_imagefolder():
    with pytest.raises(ValueError, match="rand_augment"):
        TinyMIMDataModule(dataset="embedded", rand_augment="rand-m9-mstd0.5-inc1")
