"""Image datasets as normalised tensors: the embedded digits set, the paper's datasets and the offline subsets.

Every loader returns an :class:`ImageSet` (spec §3). Pixels are scaled to [0, 1] (``raw / raw_max``, i.e.
``ToTensor``) and normalised with the dataset's mean/std, so a white pixel is ``(1 − μ_c)/σ_c``. The package reads
the native files with its own readers (torchvision's classes verify md5 sums and reject re-packed or tiny files);
torchvision is used only to download when a file is missing and the machine is online.
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from paperlab_core.data import OfflineError, find_shared_data, resolve_data_root
from paperlab_core.errors import ConfigError, MissingFileError, UserError

#: ``--data.name`` values
DATASETS = (
    "digits",
    "mnist-offline",
    "cifar10-subset",
    "mnist",
    "fashionmnist",
    "cifar10",
    "cifar100",
    "svhn",
    "stl10",
)

#: normalisation constants of the official code (mean, std) per channel
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashionmnist": ((0.2861,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "stl10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass
class ImageSet:
    """A labelled train/test split in normalised space (N×C×H×W float32) with its normalisation.

    ``raw_max`` is the largest raw pixel value (255, or 16 for digits): NAIVEATTACK's white square and the DOORPING
    initialisation draw in [1, raw_max] (spec §2.2).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    raw_max: int
    num_classes: int
    class_names: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def im_size(self) -> tuple[int, int]:
        return int(self.train_x.shape[2]), int(self.train_x.shape[3])

    def mean_std(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std as C×1×1 tensors on ``like``'s device and dtype."""
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(-1, 1, 1)
        return mean, std

    def fingerprint(self) -> str:
        return f"{self.name}:{tuple(self.train_x.shape)}:{tuple(self.test_x.shape)}:{float(self.train_x.sum()):.6e}"


def normalise(pixels01: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x − μ_c)/σ_c`` for N×C×H×W pixels in [0, 1] (``transforms.Normalize``)."""
    m = torch.tensor(mean, dtype=pixels01.dtype, device=pixels01.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=pixels01.dtype, device=pixels01.device).view(1, -1, 1, 1)
    return (pixels01 - m) / s


def _to_float01(raw: np.ndarray, raw_max: float, size: int | None = None) -> torch.Tensor:
    """N×C×H×W raw pixels → float32 in [0, 1], optionally resized (bilinear, antialiased) to size×size."""
    x = torch.from_numpy(np.ascontiguousarray(raw)).float() / raw_max
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        x = (x * 255).round().clamp(0, 255) / 255  # the official code resizes uint8 PIL images
    return x


def stratified_split(labels: np.ndarray, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices with class proportions kept (scikit-learn ``train_test_split(stratify=...)``)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=n_test, stratify=labels, random_state=seed)
    return np.sort(train), np.sort(test)


# --------------------------------------------------------------------------------------------- embedded digits
def load_digits_set(seed: int = 0, n_test: int = 500) -> ImageSet:
    """scikit-learn digits (1,797 8×8 images, raw 0–16): stratified 1,297/500 split, train mean/std (spec §3a)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = digits.images.astype(np.float32)[:, None]  # N×1×8×8 in 0..16
    labels = digits.target.astype(np.int64)
    train, test = stratified_split(labels, n_test, seed)
    x = torch.from_numpy(raw) / 16.0
    mean = (float(x[train].mean()),)
    std = (float(x[train].std()),)
    return ImageSet(
        "digits",
        normalise(x[train], mean, std),
        torch.from_numpy(labels[train]),
        normalise(x[test], mean, std),
        torch.from_numpy(labels[test]),
        mean,
        std,
        16,
        10,
        [str(c) for c in range(10)],
    )


# --------------------------------------------------------------------------------------------- native readers
def _open_maybe_gz(path: Path) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """An idx file (MNIST format, optionally gzipped): magic 2049 (labels) or 2051 (images)."""
    path = Path(path)
    try:
        data = _open_maybe_gz(path)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"{path}: cannot read ({type(err).__name__}: {err})") from None
    if len(data) < 8:
        raise UserError(f"{path}: truncated idx file (expected a header of at least 8 bytes)")
    magic = int.from_bytes(data[:4], "big")
    dims = magic & 0xFF
    if magic >> 8 != 0x08 or dims not in (1, 3):
        raise UserError(f"{path}: not an idx ubyte file (magic {magic}, expected 2049 or 2051)")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    offset = 4 + 4 * dims
    count = int(np.prod(shape))
    if len(data) - offset != count:
        raise UserError(f"{path}: holds {len(data) - offset} values, header says {count}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape).copy()


def read_cifar_batch(
    path: str | os.PathLike[str], label_key: str = "labels"
) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR python pickle batch → (N×3×32×32 uint8, N labels)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            entry = pickle.load(handle, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as err:
        raise UserError(f"{path}: not a CIFAR python batch ({type(err).__name__}: {err})") from None
    if len(labels) != len(data):
        raise UserError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def read_svhn_mat(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """SVHN ``*_32x32.mat`` (``X``: H×W×C×N, ``y`` with 10 meaning digit 0) → (N×3×32×32 uint8, labels)."""
    import scipy.io

    path = Path(path)
    try:
        mat = scipy.io.loadmat(path)
        x = np.asarray(mat["X"], dtype=np.uint8)
        y = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not an SVHN .mat file ({type(err).__name__}: {err})") from None
    y = np.where(y == 10, 0, y)
    return np.transpose(x, (3, 2, 0, 1)), y


def read_stl_binary(
    images: str | os.PathLike[str], labels: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """STL-10 binary (uint8, column-major 3×96×96; labels 1–10) → (N×3×96×96 uint8, 0-based labels)."""
    images, labels = Path(images), Path(labels)
    x = np.fromfile(images, dtype=np.uint8)
    if x.size % (3 * 96 * 96):
        raise UserError(f"{images}: size {x.size} is not a multiple of 3×96×96")
    x = np.transpose(x.reshape(-1, 3, 96, 96), (0, 1, 3, 2))
    y = np.fromfile(labels, dtype=np.uint8).astype(np.int64) - 1
    if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise UserError(f"{labels}: expected {len(x)} labels in 1..10")
    return x, y


def read_jpeg_folders(
    root: str | os.PathLike[str], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``root/<class>/*.jpg`` → (N×C×H×W uint8, labels, file names), classes in the given order."""
    from PIL import Image

    root = Path(root)
    images, labels, names = [], [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise MissingFileError(
                "class folder", folder, f"expected one folder per class ({', '.join(classes)})"
            )
        for file in sorted(folder.glob("*.jpg")):
            with Image.open(file) as img:
                images.append(np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))
            labels.append(label)
            names.append(file.stem)
    if not images:
        raise MissingFileError("JPEG images", root, "expected <class>/*.jpg files")
    return np.stack(images), np.asarray(labels, dtype=np.int64), names


# --------------------------------------------------------------------------------------------- file lookup
def _find(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def _require(folder: Path, names: Sequence[str], download: Callable[[], None] | None, dataset: str) -> Path:
    """The first of ``names`` in ``folder``; when none exists, try ``download`` (torchvision), else one line."""
    found = _find(folder, names)
    if found is None and download is not None:
        try:
            download()
        except UserError:
            raise
        except Exception as err:  # offline, DNS, HTTP, checksum: all mean "not obtainable here"
            raise OfflineError(
                folder / names[0], None, f"{dataset} download failed: {type(err).__name__}"
            ) from None
        found = _find(folder, names)
    if found is None:
        raise OfflineError(folder / names[0], None, f"{dataset} is not in the data root")
    return found


def _torchvision_download(name: str, root: Path) -> Callable[[], None]:
    def run() -> None:
        from torchvision import datasets

        if name in ("mnist", "fashionmnist"):
            cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
            cls(str(root), train=True, download=True)
            cls(str(root), train=False, download=True)
        elif name in ("cifar10", "cifar100"):
            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            cls(str(root), train=True, download=True)
        elif name == "svhn":
            datasets.SVHN(str(root), split="train", download=True)
            datasets.SVHN(str(root), split="test", download=True)
        elif name == "stl10":
            datasets.STL10(str(root), split="train", download=True)

    return run


def _idx_pair(
    folder: Path, prefix: str, download: Callable[[], None] | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(
        _require(folder, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz"], download, name)
    )
    labels = read_idx(
        _require(folder, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels-idx1-ubyte.gz"], download, name)
    )
    if len(images) != len(labels):
        raise UserError(f"{folder}: {prefix} has {len(images)} images but {len(labels)} labels")
    return images[:, None], labels.astype(np.int64)


def _image_set(
    name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], stats: str,
    size: int | None = None, num_classes: int = 10, class_names: Sequence[str] = (),
) -> ImageSet:  # fmt: skip
    mean, std = NORMALISATION[stats]
    tx, ty = train
    vx, vy = test
    return ImageSet(
        name,
        normalise(_to_float01(tx, 255.0, size), mean, std),
        torch.from_numpy(np.asarray(ty, dtype=np.int64)),
        normalise(_to_float01(vx, 255.0, size), mean, std),
        torch.from_numpy(np.asarray(vy, dtype=np.int64)),
        mean,
        std,
        255,
        num_classes,
        list(class_names) or [str(c) for c in range(num_classes)],
    )


def load_native(name: str, root: str | os.PathLike[str] | None, download: bool = True) -> ImageSet:
    """The paper's datasets from their native files under ``root`` (downloaded by torchvision when missing)."""
    base = resolve_data_root(root, "doorping")
    fetch = _torchvision_download(name, base) if download else None
    if name in ("mnist", "fashionmnist"):
        folder = base / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw"
        return _image_set(
            name,
            _idx_pair(folder, "train", fetch, name),
            _idx_pair(folder, "t10k", fetch, name),
            name,
            size=32,
        )
    if name == "cifar10":
        folder = base / "cifar-10-batches-py"
        parts = [read_cifar_batch(_require(folder, [f"data_batch_{i}"], fetch, name)) for i in range(1, 6)]
        train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        test = read_cifar_batch(_require(folder, ["test_batch"], fetch, name))
        return _image_set(name, train, test, name, class_names=CIFAR10_CLASSES)
    if name == "cifar100":
        folder = base / "cifar-100-python"
        train = read_cifar_batch(_require(folder, ["train"], fetch, name), "fine_labels")
        test = read_cifar_batch(_require(folder, ["test"], fetch, name), "fine_labels")
        return _image_set(name, train, test, name, num_classes=100)
    if name == "svhn":
        train = read_svhn_mat(_require(base, ["train_32x32.mat"], fetch, name))
        test = read_svhn_mat(_require(base, ["test_32x32.mat"], fetch, name))
        return _image_set(name, train, test, name)
    if name == "stl10":
        folder = base / "stl10_binary"
        files = {
            k: _require(folder, [f"{k}.bin"], fetch, name) for k in ("train_X", "train_y", "test_X", "test_y")
        }
        train = read_stl_binary(files["train_X"], files["train_y"])
        test = read_stl_binary(files["test_X"], files["test_y"])
        return _image_set(name, train, test, name, size=32)
    raise ConfigError(f"unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")


# --------------------------------------------------------------------------------------------- ../shared/data
def _shared(root: str | os.PathLike[str] | None) -> Path:
    if root:
        return Path(root).expanduser()
    found = find_shared_data()
    if found is None:
        raise MissingFileError(
            "../shared/data",
            "../shared/data",
            "this preset reads the shared offline data; pass --data.root DIR",
        )
    return found


def load_mnist_offline(root: str | os.PathLike[str] | None = None, seed: int = 0) -> ImageSet:
    """MNIST test set from ``../shared/data/images/mnist``: stratified 8,000/2,000 (seed 0), 32×32 (spec §3c)."""
    folder = _shared(root) / "images" / "mnist"
    images, labels = _idx_pair(folder, "t10k", None, "mnist-offline")
    train, test = stratified_split(labels, 2000, seed)
    s = _image_set(
        "mnist-offline", (images[train], labels[train]), (images[test], labels[test]), "mnist", size=32
    )
    return s


def load_cifar10_subset(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """The 2,000-image CIFAR-10 JPEG subset: per class 0000–0159 → train, 0160–0199 → test (spec §3c)."""
    folder = _shared(root) / "images" / "cifar10_test_jpg"
    images, labels, names = read_jpeg_folders(folder, CIFAR10_CLASSES)
    is_test = np.array([int(n) >= 160 for n in names])
    return _image_set(
        "cifar10-subset",
        (images[~is_test], labels[~is_test]),
        (images[is_test], labels[is_test]),
        "cifar10",
        class_names=CIFAR10_CLASSES,
    )


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, seed: int = 0) -> ImageSet:
    """Any ``--data.name`` (see :data:`DATASETS`)."""
    if name == "digits":
        return load_digits_set(seed)
    if name == "mnist-offline":
        return load_mnist_offline(root, seed)
    if name == "cifar10-subset":
        return load_cifar10_subset(root)
    if name in DATASETS:
        return load_native(name, root)
    raise ConfigError(f"unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")
