"""Image sources: the embedded generators (``stills32``, ``shapes10``) and readers for the real datasets.

Every reader returns float tensors in [0, 1] of shape (N, 3, H, W) plus int64 labels (grey data is replicated to
3 channels so every model keeps ``in_chans=3``).
"""

from __future__ import annotations

import gzip
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from paperlab_core.data import OfflineError, find_shared_data
from paperlab_core.errors import ConfigError, MissingFileError, UserError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SHAPES10_CLASSES = (
    "disk",
    "square",
    "triangle",
    "ring",
    "plus",
    "horizontal_bars",
    "vertical_bars",
    "checkerboard",
    "diagonal_stripes",
    "star",
)


@lru_cache(maxsize=1)
def still_images() -> tuple[np.ndarray, ...]:
    """The bundled stills (scikit-image + scikit-learn wheels), uint8 H×W×3. Never downloads."""
    import skimage.data as sk
    from sklearn.datasets import load_sample_images

    def rgb(img: np.ndarray) -> np.ndarray:
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        return np.ascontiguousarray(img[..., :3]).astype(np.uint8)

    left, right = sk.stereo_motorcycle()[:2]
    images = [sk.astronaut(), sk.camera(), sk.coffee(), sk.chelsea(), sk.rocket(), left, right]
    images += [sk.brick(), sk.grass(), sk.gravel()]
    images += list(load_sample_images().images)
    return tuple(rgb(img) for img in images)


def _resize(patch: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.from_numpy(patch).permute(2, 0, 1)[None].float() / 255.0
    out = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0].clamp(0, 1).numpy()


def still_crop(seed: int, index: int, size: int = 32, scale: tuple[float, float] = (0.02, 0.3)) -> np.ndarray:
    """One ``stills32`` image: a random resized crop (area fraction ``scale``) of a bundled still, random flip.

    Deterministic per ``(seed, index)``. Returns float32 (3, size, size) in [0, 1].
    """
    rng = np.random.default_rng([seed, index, 32])
    stills = still_images()
    img = stills[int(rng.integers(len(stills)))]
    height, width = img.shape[:2]
    area = rng.uniform(*scale) * height * width
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    crop_h = int(min(height, max(4, round(np.sqrt(area / aspect)))))
    crop_w = int(min(width, max(4, round(np.sqrt(area * aspect)))))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    patch = img[top : top + crop_h, left : left + crop_w]
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return _resize(np.ascontiguousarray(patch), size).astype(np.float32)


def stills32(count: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    """``count`` unlabelled natural-image crops (N, 3, size, size)."""
    return torch.from_numpy(np.stack([still_crop(seed, i, size) for i in range(count)]))


def _shape_mask(
    label: int, x: np.ndarray, y: np.ndarray, radius: float, rng: np.random.Generator
) -> np.ndarray:
    """Membership of each (rotated, centred) coordinate in the foreground of class ``label``."""
    r = np.hypot(x, y)
    inside_square = (np.abs(x) <= radius) & (np.abs(y) <= radius)
    period = radius / 2.0
    if label == 0:  # disk
        return r <= radius
    if label == 1:  # square
        return np.maximum(np.abs(x), np.abs(y)) <= radius * 0.85
    if label == 2:  # equilateral triangle pointing up
        return (y <= radius * 0.5) & (np.sqrt(3) * x - y <= radius) & (-np.sqrt(3) * x - y <= radius)
    if label == 3:  # ring
        return (r <= radius) & (r >= radius * 0.55)
    if label == 4:  # plus
        arm = radius * 0.3
        return ((np.abs(x) <= arm) & (np.abs(y) <= radius)) | ((np.abs(y) <= arm) & (np.abs(x) <= radius))
    if label == 5:  # horizontal bars
        return inside_square & (np.floor(y / period) % 2 == 0)
    if label == 6:  # vertical bars
        return inside_square & (np.floor(x / period) % 2 == 0)
    if label == 7:  # checkerboard
        return inside_square & ((np.floor(x / period) + np.floor(y / period)) % 2 == 0)
    if label == 8:  # diagonal stripes
        return inside_square & (np.floor((x + y) / (period * 1.2)) % 2 == 0)
    if label == 9:  # five-point star
        angle = np.arctan2(y, x)
        profile = 0.5 + 0.5 * np.cos(5 * angle) ** 2 * (np.cos(5 * angle) > 0)
        return r <= radius * (0.45 + 0.55 * profile)
    raise ValueError(f"shapes10 has classes 0..9, got {label}")


def shape_image(seed: int, index: int, size: int = 32) -> tuple[np.ndarray, int]:
    """One ``shapes10`` image (float32 (3, size, size) in [0, 1]) and its label; deterministic per (seed, index)."""
    rng = np.random.default_rng([seed, index, 10])
    label = int(index % 10)
    if rng.random() < 0.5:
        background = 0.45 * still_crop(seed + 7919, index, size)
    else:
        base = rng.uniform(0, 0.6, size=(3, 1, 1))
        background = np.clip(base + rng.normal(0, 0.15, size=(3, size, size)), 0, 1)
    radius = size * rng.uniform(0.4, 0.8) / 2
    centre = size / 2 - 0.5 + rng.uniform(-4, 4, size=2)
    angle = rng.uniform(-np.pi / 18, np.pi / 18) if label in (5, 6) else rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xx - centre[0], yy - centre[1]
    cos, sin = np.cos(angle), np.sin(angle)
    rx, ry = cos * dx + sin * dy, -sin * dx + cos * dy
    mask = _shape_mask(label, rx, ry, radius, rng)
    colour = rng.uniform(0.35, 1.0, size=3)
    colour[int(rng.integers(3))] = rng.uniform(0.0, 0.3)
    img = np.where(mask[None], colour[:, None, None], background)
    img = np.clip(img + rng.normal(0, 0.03, size=img.shape), 0, 1)
    return img.astype(np.float32), label


def shapes10(count: int, seed: int = 0, offset: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` labelled shapes10 images starting at index ``offset`` (train and test use disjoint offsets)."""
    pairs = [shape_image(seed, offset + i, size) for i in range(count)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs]))
    labels = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return images, labels


def digits(size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn digits, stratified 1,297 train / 500 test (fixed ``seed``), bilinear-resized to ``size``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    images = images.repeat(1, 3, 1, 1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=500, stratify=bunch.target, random_state=seed
    )
    return images[idx_train], labels[idx_train], images[idx_test], labels[idx_test]


def default_cifar_subset_root() -> Path | None:
    shared = find_shared_data()
    return shared / "images" / "cifar10_test_jpg" if shared else None


def cifar_jpeg_subset(
    root: str | Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The JPEG CIFAR-10 test subset ``<root>/<class>/NNNN.jpg``: files 0000–0159 → train, 0160–0199 → test."""
    from PIL import Image

    root = Path(root) if root else default_cifar_subset_root()
    expected = (
        f"expected <root>/<class>/0000.jpg for the classes {', '.join(CIFAR10_CLASSES)}; pass --data.root or set "
        "$PAPERLAB_SHARED_DATA"
    )
    if root is None:
        raise MissingFileError("CIFAR-10 JPEG subset", "../shared/data/images/cifar10_test_jpg", expected)
    if not root.is_dir():
        raise MissingFileError("CIFAR-10 JPEG subset", root, expected)
    splits: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(CIFAR10_CLASSES):
        folder = root / name
        files = sorted(folder.glob("*.jpg"))
        if not files:
            raise UserError(f"{folder}: no .jpg files (expected {name}/0000.jpg ... 0199.jpg)")
        for path in files:
            try:
                number = int(path.stem)
            except ValueError as err:
                raise ConfigError(f"{path}: file names must be 4-digit numbers like 0000.jpg") from err
            with Image.open(path) as handle:
                array = np.asarray(handle.convert("RGB"), dtype=np.uint8)
            if array.shape != (32, 32, 3):
                raise ConfigError(f"{path}: expected a 32×32 RGB image, got shape {array.shape}")
            split = "train" if number < 160 else "test"
            splits[split][0].append(array)
            splits[split][1].append(label)

    def stack(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        arrays, labels = splits[split]
        if not arrays:
            raise UserError(f"{root}: the {split} split is empty (train: 0000–0159, test: 0160–0199)")
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        return images, torch.tensor(labels, dtype=torch.long)

    return (*stack("train"), *stack("test"))


def cifar_pickle(
    root: str | Path, name: str = "cifar10", train: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10/100 from the native python-pickle batches (``cifar-10-batches-py/``, ``cifar-100-python/``).

    When the folder is missing, torchvision's downloader is tried; offline that raises a one-line error.
    """
    root = Path(root)
    folder, files, key = {
        "cifar10": (
            "cifar-10-batches-py",
            [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"],
            "labels",
        ),
        "cifar100": ("cifar-100-python", ["train" if train else "test"], "fine_labels"),
    }[name]
    base = root / folder
    if not base.is_dir():
        try:
            import torchvision

            cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
            cls(str(root), train=train, download=True)
        except Exception as err:
            raise OfflineError(
                base, "https://www.cs.toronto.edu/~kriz/", f"{name} download failed: {type(err).__name__}"
            ) from None
    arrays, labels = [], []
    for file in files:
        path = base / file
        if not path.is_file():
            raise MissingFileError("CIFAR batch", path, "expected the python-pickle layout")
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        if "data" not in batch or key not in batch:
            raise ConfigError(f"{path}: expected keys 'data' and {key!r}, found {sorted(batch)}")
        arrays.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(int(v) for v in batch[key])
    images = torch.from_numpy(np.concatenate(arrays)).float() / 255.0
    return images, torch.tensor(labels, dtype=torch.long)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ConfigError(f"{path}: IDX magic {found} (expected {magic})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def mnist_test(root: str | Path | None = None, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """The MNIST test set from ``t10k-{images-idx3,labels-idx1}-ubyte.gz`` (read with gzip + numpy), padded."""
    if root is None:
        shared = find_shared_data()
        root = shared / "images" / "mnist" if shared else Path("mnist")
    root = Path(root)
    images_path = root / "t10k-images-idx3-ubyte.gz"
    labels_path = root / "t10k-labels-idx1-ubyte.gz"
    for path in (images_path, labels_path):
        if not path.is_file():
            raise OfflineError(path, "https://ossci-datasets.s3.amazonaws.com/mnist/", "not on disk")
    images = torch.from_numpy(_read_idx(images_path, 2051).astype(np.float32) / 255.0)[:, None]
    labels = torch.from_numpy(_read_idx(labels_path, 2049).astype(np.int64))
    pad = (size - images.shape[-1]) // 2
    if pad > 0:
        images = F.pad(images, (pad, size - 28 - pad, pad, size - 28 - pad))
    return images.repeat(1, 3, 1, 1), labels


def per_channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of a (N, C, H, W) tensor."""
    mean = images.mean(dim=(0, 2, 3))
    std = images.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
