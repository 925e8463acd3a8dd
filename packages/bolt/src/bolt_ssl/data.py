"""Datasets as uint8 arrays: embedded (synthetic-retina, digits), MedMNIST ``.npz``, ImageFolder and CSV folders,
plus the label-subset sampler (spec §2.8, §3).

Everything here returns a :class:`Dataset` of numpy arrays; tensors are made by :func:`to_tensor` where a model
needs them. Bad files give one-line errors that name the file and the field.
"""

from __future__ import annotations

import csv as csv_module
import functools
import hashlib
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.errors import ConfigError, MissingFileError, UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
EMBEDDED = ("synthetic-retina", "digits")
NAMES = (*EMBEDDED, "retinamnist", "breastmnist", "medmnist:<flag>", "folder", "csv")
SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")
NPZ_KEYS = tuple(f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels"))
MEDMNIST_URL = "https://zenodo.org/records/10519652/files/{name}?download=1"

#: flag → (task, channels, classes, (train, val, test), {size: md5}) — medmnist 3.0.2 ``info.py`` (third-party).
MEDMNIST: dict[str, tuple[str, int, int, tuple[int, int, int], dict[int, str]]] = {
    "pathmnist": ("multiclass", 3, 9, (89996, 10004, 7180), {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616", 128: "ac42d08fb904d92c244187169d1fd1d9", 224: "2c51a510bcdc9cf8ddb2af93af1eadec"}),
    "chestmnist": ("multilabel", 1, 14, (78468, 11219, 22433), {28: "02c8a6516a18b556561a56cbdd36c4a8", 64: "9de6cd0b934ebb5b7426cfba5efbae16", 128: "db107e5590b27930b62dbaf558aebee3", 224: "45bd33e6f06c3e8cdb481c74a89152aa"}),
    "dermamnist": ("multiclass", 3, 7, (7007, 1003, 2005), {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f", 128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"}),
    "octmnist": ("multiclass", 1, 4, (97477, 10832, 1000), {28: "c68d92d5b585d8d81f7112f81e2d0842", 64: "e229e9440236b774d9f0dfef9d07bdaf", 128: "0a97e76651ace45c5d943ee3f65b63ae", 224: "abc493b6d529d5de7569faaef2773ba3"}),
    "pneumoniamnist": ("binary", 1, 2, (4708, 524, 624), {28: "28209eda62fecd6e6a2d98b1501bb15f", 64: "8f4eceb4ccffa70c672198ea285246c6", 128: "05b46931834c231683c68f40c47b2971", 224: "d6a3c71de1b945ea11211b03746c1fe1"}),
    "retinamnist": ("ordinal", 3, 5, (1080, 120, 400), {28: "bd4c0672f1bba3e3a89f0e4e876791e4", 64: "afda852cc34dcda56f86ad2b2457dbcc", 128: "e48e916a24454daf90583d4e6efb1a18", 224: "eae7e3b6f3fcbda4ae613ebdcbe35348"}),
    "breastmnist": ("binary", 1, 2, (546, 78, 156), {28: "750601b1f35ba3300ea97c75c52ff8f6", 64: "742edef2a1fd1524b2efff4bd7ba9364", 128: "363e4b3f8d712e9b5de15470a2aaadf1", 224: "b56378a6eefa9fed602bb16d192d4c8b"}),
    "bloodmnist": ("multiclass", 3, 8, (11959, 1712, 3421), {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b", 128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"}),
    "tissuemnist": ("multiclass", 1, 8, (165466, 23640, 47280), {28: "ebe78ee8b05294063de985d821c1c34b", 64: "123ece2eba09d0aa5d698fda57103344", 128: "61b955355d7425a89687b06cca3ce0c2", 224: "b077128c4a949f0a4eb01517f9037b9c"}),
    "organamnist": ("multiclass", 1, 11, (34561, 6491, 17778), {28: "68e3f8846a6bd62f0c9bf841c0d9eacc", 64: "2dcccc29b88e6da5a01161ef20cda288", 128: "eeae80d0a227a8d099027e1b3cfd3b60", 224: "50747347e05c87dd3aaf92c49f9f3170"}),
    "organcmnist": ("multiclass", 1, 11, (12975, 2392, 8216), {28: "b9ceb9546e10131b32923c5bbeaea2b1", 64: "3ce34a8724ea6f548e6db4744d03b6a9", 128: "773c1f009daa3fe5d9a2a201b2a7ed94", 224: "050f5e875dc056f6768abf94ec9995d1"}),
    "organsmnist": ("multiclass", 1, 11, (13932, 2452, 8827), {28: "9ab87b696fb54e2a387ebe992d6ed5f1", 64: "53a6d115339d874c25e309a994ff46d3", 128: "ded0c5fa01a95dc4978b956f613e9b8e", 224: "b354719e553fbbb2513d5533f52a4cb1"}),
}  # fmt: skip


class DataFileMissing(MissingFileError):
    """A dataset file that is not on disk and could not be downloaded: exit status 2 (spec §3b)."""

    exit_code = 2


@dataclass
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int64, or (N, L) 0/1 for multi-label tasks

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class Dataset:
    """Three labelled splits, an optional unlabelled pool, and what the metrics need to know."""

    name: str
    task: str
    n_classes: int
    train: Split
    val: Split
    test: Split
    pool: np.ndarray | None = None  # unlabelled pre-training images; default: the train images
    md5: str | None = None
    official: bool | None = None
    source: str = "generated"
    notes: list[str] = field(default_factory=list)

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def size(self) -> int:
        return int(self.train.images.shape[1])

    def pretrain_pool(self) -> np.ndarray:
        return self.train.images if self.pool is None else self.pool

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise ConfigError(f"split {name!r}: expected one of {', '.join(SPLITS)}")
        return getattr(self, name)


@dataclass
class DataConfig:
    """What to load (the ``--data.*`` options of every verb)."""

    name: str = "synthetic-retina"
    size: int = 28
    root: str | None = None
    file: str | None = None
    as_rgb: bool = False
    ordinal: bool = False
    pool_extra: int = 0
    pool_extra_match_stats: bool = True
    n_pool: int = 4000
    n_train: int = 1000
    n_val: int = 200
    n_test: int = 1000
    prior: str = "retinamnist"
    seed: int = 0
    split_seed: int = 0
    csv: str | None = None
    image_dir: str | None = None
    image_col: str | None = None
    label_col: str | None = None
    onehot_cols: list[str] | None = None


# --------------------------------------------------------------------------------------------- embedded
@functools.lru_cache(maxsize=4)
def _synthetic(
    size: int, n_pool: int, n_train: int, n_val: int, n_test: int, prior: str, seed: int
) -> Dataset:
    from bolt_ssl import synth

    parts = {}
    for index, (key, n) in enumerate(
        {"pool": n_pool, "train": n_train, "val": n_val, "test": n_test}.items()
    ):
        parts[key] = synth.generate(
            n, size=size, seed=seed * 16 + index, prior=prior
        )  # disjoint seed streams
    return Dataset(
        "synthetic-retina", "ordinal", synth.N_GRADES,
        *(Split(parts[k].images, parts[k].grades) for k in SPLITS), pool=parts["pool"].images,
        source="generated from skimage.data.retina (CC0)",
    )  # fmt: skip


@functools.lru_cache(maxsize=1)
def _digits() -> Dataset:
    """sklearn digits, 8×8 → 16×16 bilinear, grey; a fixed stratified 1,257-image pool / 540-image test split."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    up = F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    up8 = (up.clamp(0, 1) * 255).round().byte().numpy()[..., None]
    labels = bunch.target.astype(np.int64)
    pool_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=540, stratify=labels, random_state=0
    )
    train = Split(up8[pool_idx], labels[pool_idx])
    test = Split(up8[test_idx], labels[test_idx])
    return Dataset("digits", "multiclass", 10, train, test, test, source="sklearn.datasets.load_digits",
                   notes=["val = test (540 held-out images)"])  # fmt: skip


# --------------------------------------------------------------------------------------------- MedMNIST
def md5sum(path: str | os.PathLike[str]) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def medmnist_filename(flag: str, size: int) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def search_roots(root: str | None) -> list[Path]:
    """--data.root, then ../shared/data/medmnist, then ~/.medmnist (spec §3b)."""
    from paperlab_core.data import find_shared_data

    roots = [Path(root).expanduser()] if root else []
    shared = find_shared_data()
    if shared is not None:
        roots.append(shared / "medmnist")
    roots.append(Path.home() / ".medmnist")
    return roots


def find_medmnist(flag: str, size: int, root: str | None) -> Path | None:
    """The first file named ``<flag>[_<size>].npz`` (case-insensitive) in the search roots."""
    wanted = medmnist_filename(flag, size).lower()
    for folder in search_roots(root):
        if folder.is_dir():
            for candidate in sorted(folder.iterdir()):
                if candidate.name.lower() == wanted and candidate.is_file():
                    return candidate
    return None


def _download_medmnist(flag: str, size: int, root: str | None) -> Path | None:
    """Download into --data.root (or ~/.medmnist) when online; None when offline or the download fails."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("PAPERLAB_OFFLINE") == "1":
        return None
    from paperlab_core.data import download

    name = medmnist_filename(flag, size)
    dest = (Path(root).expanduser() if root else Path.home() / ".medmnist") / name
    try:
        download(MEDMNIST_URL.format(name=name), dest)
    except (UserError, OSError):
        return None
    return dest


def _labels(array: np.ndarray, n: int, path: Path, key: str, task: str, n_labels: int) -> np.ndarray:
    if array.shape[0] != n:
        raise UserError(
            f"{path}: {key} has {array.shape[0]} rows but the images have {n} (expected one label per image)"
        )
    if task == "multilabel":
        if array.ndim != 2 or array.shape[1] != n_labels:
            raise UserError(f"{path}: {key} has shape {array.shape} (expected ({n}, {n_labels}) 0/1 labels)")
        return array.astype(np.int64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise UserError(f"{path}: {key} has shape {array.shape} (expected ({n},) or ({n}, 1) class indices)")
    return array.astype(np.int64)


def _images(array: np.ndarray, path: Path, key: str, as_rgb: bool) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[1] != array.shape[2]:
        raise UserError(
            f"{path}: {key} has shape {array.shape} (expected (N, H, W) grey or (N, H, W, 3) colour, square)"
        )
    if array.dtype != np.uint8:
        raise UserError(f"{path}: {key} has dtype {array.dtype} (expected uint8)")
    return np.repeat(array, 3, axis=-1) if as_rgb and array.shape[-1] == 1 else np.asarray(array)


def load_npz(
    path: Path, flag: str | None, task: str, n_classes: int, as_rgb: bool = False, size: int | None = None
) -> Dataset:
    """Read a MedMNIST-style ``.npz``; MD5 and split counts are checked against the table (warnings only)."""
    try:
        npz = np.load(path, mmap_mode="r") if size and size >= 128 else np.load(path)
    except Exception as err:
        raise UserError(f"{path} is not a readable .npz file ({type(err).__name__})") from None
    with npz as data:
        missing = [key for key in NPZ_KEYS if key not in data.files]
        if missing:
            raise UserError(f"{path}: missing keys {', '.join(missing)} (expected {', '.join(NPZ_KEYS)})")
        splits = {}
        for split in SPLITS:
            images = _images(data[f"{split}_images"], path, f"{split}_images", as_rgb)
            labels = _labels(data[f"{split}_labels"], len(images), path, f"{split}_labels", task, n_classes)
            splits[split] = Split(images, labels)
    found_size = splits["train"].images.shape[1]
    if size is not None and found_size != size:
        raise UserError(
            f"{path}: images are {found_size} px but data.size is {size} (expected {size}-px images)"
        )
    if task != "multilabel":
        top = max(int(s.labels.max(initial=0)) for s in splits.values())
        if top >= n_classes or min(int(s.labels.min(initial=0)) for s in splits.values()) < 0:
            raise UserError(f"{path}: labels outside 0..{n_classes - 1} (expected {n_classes} classes)")
    md5 = md5sum(path)
    official: bool | None = None
    notes: list[str] = []
    if flag is not None:
        expected = MEDMNIST[flag][4].get(found_size)
        official = md5 == expected
        if not official:
            notes.append(f"non-official file: MD5 {md5} differs from the official {expected}")
        counts = tuple(len(splits[s]) for s in SPLITS)
        if counts != MEDMNIST[flag][3]:
            notes.append(f"split sizes {counts} differ from the official {MEDMNIST[flag][3]}")
        for note in notes:
            warnings.warn(f"{path}: {note}", UserWarning, stacklevel=2)
    return Dataset(
        flag or path.stem, task, n_classes, splits["train"], splits["val"], splits["test"], md5=md5,
        official=official, source=str(path), notes=notes,
    )  # fmt: skip


def load_medmnist(flag: str, size: int, root: str | None, file: str | None, as_rgb: bool) -> Dataset:
    if flag not in MEDMNIST:
        raise ConfigError(f"unknown MedMNIST flag {flag!r} (expected one of {', '.join(MEDMNIST)})")
    if size not in SIZES:
        raise ConfigError(f"data.size {size}: MedMNIST comes in sizes {', '.join(map(str, SIZES))}")
    task, _, n_classes, _, md5s = MEDMNIST[flag]
    if file:
        path = Path(file).expanduser()
        if not path.is_file() and root and (Path(root) / file).is_file():
            path = Path(root) / file
        if not path.is_file():
            raise DataFileMissing("data.file", path, "expected a MedMNIST-style .npz")
    else:
        path = find_medmnist(flag, size, root) or _download_medmnist(flag, size, root)
        if path is None:
            name = medmnist_filename(flag, size)
            searched = ", ".join(str(p) for p in search_roots(root))
            raise DataFileMissing(
                "MedMNIST file", name,
                f"searched {searched}; offline: download {MEDMNIST_URL.format(name=name)} elsewhere and put it in "
                f"one of those folders or pass --data.root DIR; MD5 {md5s[size]}",
            )  # fmt: skip
    return load_npz(path, flag, task, n_classes, as_rgb, size)


# --------------------------------------------------------------------------------------------- folders
def _read_image(path: Path, size: int, grey: bool) -> np.ndarray:
    """Square centre crop, resize to ``size`` (area/antialiased), uint8 (H, W, C)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L" if grey else "RGB")
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BOX)
            array = np.asarray(img, dtype=np.uint8)
    except OSError as err:
        raise UserError(f"{path}: cannot read the image ({err})") from None
    return array[..., None] if array.ndim == 2 else array


def _stratified_split(labels: np.ndarray, seed: int, ratios=(0.7, 0.1, 0.2)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    keys = labels if labels.ndim == 1 else np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(keys):
        idx = rng.permutation(np.flatnonzero(keys == c))
        n_train = int(round(ratios[0] * len(idx)))
        n_val = int(round(ratios[1] * len(idx)))
        out["train"] += idx[:n_train].tolist()
        out["val"] += idx[n_train : n_train + n_val].tolist()
        out["test"] += idx[n_train + n_val :].tolist()
    return {s: np.sort(np.asarray(v, dtype=np.int64)) for s, v in out.items()}


def load_folder(root: str | None, size: int, ordinal: bool, split_seed: int, as_rgb: bool) -> Dataset:
    """``root/{train,val,test}/<class>/*`` or ``root/<class>/*`` (split 0.7/0.1/0.2 by ``split_seed``)."""
    if not root:
        raise ConfigError("data.name folder needs --data.root DIR (root/{train,val,test}/<class>/*.png)")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise MissingFileError("data root", base, "expected a folder of class sub-folders")
    has_splits = all((base / s).is_dir() for s in SPLITS)
    tops = [base / s for s in SPLITS] if has_splits else [base]
    classes = sorted({d.name for top in tops for d in top.iterdir() if d.is_dir()})
    if len(classes) < 2:
        raise UserError(
            f"{base}: found {len(classes)} class folder(s) (expected at least 2 sub-folders of images)"
        )
    files: dict[str, list[tuple[Path, int]]] = {}
    for top, split in zip(tops, SPLITS if has_splits else ("all",), strict=False):
        files[split] = [
            (f, c) for c, name in enumerate(classes) if (top / name).is_dir()
            for f in sorted((top / name).iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS
        ]  # fmt: skip
    grey = False
    first = next(iter(f for v in files.values() for f, _ in v), None)
    if first is None:
        raise UserError(f"{base}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders")
    from PIL import Image

    with Image.open(first) as img:
        grey = img.mode in {"L", "I", "I;16", "1"} and not as_rgb

    def read(items: list[tuple[Path, int]]) -> Split:
        images = (
            np.stack([_read_image(f, size, grey) for f, _ in items])
            if items
            else np.zeros((0, size, size, 1 if grey else 3), np.uint8)
        )
        return Split(images, np.asarray([c for _, c in items], dtype=np.int64))

    if has_splits:
        splits = {s: read(files[s]) for s in SPLITS}
    else:
        whole = read(files["all"])
        idx = _stratified_split(whole.labels, split_seed)
        splits = {s: Split(whole.images[idx[s]], whole.labels[idx[s]]) for s in SPLITS}
    task = "ordinal" if ordinal else ("binary" if len(classes) == 2 else "multiclass")
    return Dataset(f"folder:{base.name}", task, len(classes), splits["train"], splits["val"], splits["test"],
                   source=str(base), notes=[f"classes: {', '.join(classes)}"])  # fmt: skip


def load_csv(cfg: DataConfig) -> Dataset:
    """A CSV of image names and labels (integer/string ``label_col`` or one-hot ``onehot_cols``)."""
    if not cfg.csv or not cfg.image_col:
        raise ConfigError("data.name csv needs --data.csv FILE and --data.image_col NAME")
    path = Path(cfg.csv).expanduser()
    if not path.is_file():
        raise MissingFileError("data.csv", path, "expected a CSV file of image names and labels")
    image_dir = Path(cfg.image_dir).expanduser() if cfg.image_dir else path.parent
    if not image_dir.is_dir():
        raise MissingFileError("data.image_dir", image_dir, "expected the folder holding the images")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv_module.DictReader(handle))
    if not rows:
        raise UserError(f"{path}: no rows")
    header = rows[0].keys()
    wanted = [cfg.image_col, *(cfg.onehot_cols or ([cfg.label_col] if cfg.label_col else []))]
    if not cfg.onehot_cols and not cfg.label_col:
        raise ConfigError("data.name csv needs --data.label_col NAME or --data.onehot_cols A,B,...")
    missing = [c for c in wanted if c not in header]
    if missing:
        raise UserError(f"{path}: missing columns {', '.join(missing)} (found {', '.join(header)})")
    if cfg.onehot_cols:
        classes = list(cfg.onehot_cols)
        labels = np.asarray([np.argmax([float(r[c]) for c in classes]) for r in rows], dtype=np.int64)
    else:
        raw = [r[cfg.label_col] for r in rows]
        try:
            labels = np.asarray([int(v) for v in raw], dtype=np.int64)
            classes = [str(c) for c in range(int(labels.max()) + 1)]
        except ValueError:
            classes = sorted(set(raw))
            labels = np.asarray([classes.index(v) for v in raw], dtype=np.int64)

    def locate(name: str) -> Path:
        candidate = image_dir / name
        if candidate.is_file():
            return candidate
        for ext in IMAGE_EXTENSIONS:
            if (image_dir / f"{name}{ext}").is_file():
                return image_dir / f"{name}{ext}"
        raise MissingFileError("image", candidate, f"listed in {path}; expected it in {image_dir}")

    files = [locate(r[cfg.image_col]) for r in rows]
    images = np.stack([_read_image(f, cfg.size, grey=False) for f in files])
    idx = _stratified_split(labels, cfg.split_seed)
    splits = {s: Split(images[idx[s]], labels[idx[s]]) for s in SPLITS}
    task = "ordinal" if cfg.ordinal else ("binary" if len(classes) == 2 else "multiclass")
    return Dataset(f"csv:{path.stem}", task, len(classes), splits["train"], splits["val"], splits["test"],
                   source=str(path), notes=[f"classes: {', '.join(classes)}"])  # fmt: skip


# --------------------------------------------------------------------------------------------- entry
def load_dataset(cfg: DataConfig) -> Dataset:
    """The dataset ``cfg`` names, with ``pool_extra`` synthetic-retina images added to its pre-training pool."""
    name = cfg.name
    if name == "synthetic-retina":
        data = _synthetic(cfg.size, cfg.n_pool, cfg.n_train, cfg.n_val, cfg.n_test, cfg.prior, cfg.seed)
    elif name == "digits":
        data = _digits()
    elif name.startswith("medmnist:") or name in MEDMNIST:
        data = load_medmnist(name.split(":", 1)[-1], cfg.size, cfg.root, cfg.file, cfg.as_rgb)
    elif name == "folder":
        data = load_folder(cfg.root, cfg.size, cfg.ordinal, cfg.split_seed, cfg.as_rgb)
    elif name == "csv":
        data = load_csv(cfg)
    else:
        raise ConfigError(f"unknown dataset {name!r} (expected one of {', '.join(NAMES)})")
    if cfg.pool_extra and name != "synthetic-retina":
        data = add_pool_extra(data, cfg.pool_extra, cfg.pool_extra_match_stats, cfg.seed)
    return data


def add_pool_extra(data: Dataset, n_extra: int, match_stats: bool, seed: int) -> Dataset:
    """Append ``n_extra`` unlabelled synthetic-retina images (at the dataset's size) to the pre-training pool,
    each channel affinely matched to the real pool's mean/std when ``match_stats`` (ours, spec §3a)."""
    from bolt_ssl import synth

    if data.channels != 3:
        raise ConfigError(
            f"data.pool_extra adds colour synthetic-retina images; {data.name} has {data.channels} channel(s)"
        )
    extra = synth.generate(n_extra, size=data.size, seed=10_000 + seed).images.astype(np.float64)
    if match_stats:
        real = data.train.images.astype(np.float64)
        mu_r, sd_r = real.mean(axis=(0, 1, 2)), real.std(axis=(0, 1, 2))
        mu_e, sd_e = extra.mean(axis=(0, 1, 2)), extra.std(axis=(0, 1, 2))
        extra = (extra - mu_e) / np.maximum(sd_e, 1e-6) * sd_r + mu_r
    extra8 = np.clip(np.round(extra), 0, 255).astype(np.uint8)
    return replace(data, pool=np.concatenate([data.pretrain_pool(), extra8]))


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1]."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    return x.mean(axis=0).tolist(), np.maximum(x.std(axis=0), 1e-6).tolist()


def to_tensor(images: np.ndarray, mean: list[float], std: list[float]) -> Any:
    """(N, H, W, C) uint8 → (N, C, H, W) float32, standardised per channel."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s


# --------------------------------------------------------------------------------------------- label subsets
def stratified_counts(class_counts: np.ndarray, n: int) -> np.ndarray:
    """floor(n·share) per class, at least 1, remaining slots to the largest remainders (ties: class index)."""
    counts = np.asarray(class_counts, dtype=np.float64)
    ideal = n * counts / counts.sum()
    alloc = np.maximum(np.floor(ideal), 1).astype(np.int64)
    alloc = np.minimum(alloc, class_counts)
    remaining = n - int(alloc.sum())
    if remaining > 0:
        order = sorted(range(len(counts)), key=lambda c: (-(ideal[c] - alloc[c]), c))
        for c in order:
            if remaining == 0:
                break
            if alloc[c] < class_counts[c]:
                alloc[c] += 1
                remaining -= 1
    return alloc


def label_subset(
    labels: np.ndarray,
    n_classes: int,
    task: str,
    seed: int,
    fraction: float | None = None,
    k: int | None = None,
) -> np.ndarray:
    """Sorted indices of the labelled images: a stratified fraction (n = max(round(f·N), C), ≥ 1 per class) or
    ``k`` per class; multi-label: uniform. Depends only on (labels, f or k, seed): the same for every method."""
    if (fraction is None) == (k is None):
        raise ConfigError("give exactly one of --label-fraction and --label-k")
    n_total = len(labels)
    key = [int(seed), int(round((fraction or 0) * 1e6)), int(k or 0)]
    rng = np.random.default_rng(key)
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"--label-fraction {fraction}: expected a value in (0, 1]")
    if fraction == 1.0:
        return np.arange(n_total)
    if task == "multilabel":
        n = max(int(round(fraction * n_total)), 1) if fraction is not None else int(k) * labels.shape[1]
        return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))
    class_counts = np.bincount(labels, minlength=n_classes)
    if fraction is not None:
        n = max(int(round(fraction * n_total)), n_classes)
        per_class = stratified_counts(np.maximum(class_counts, 0), n)
    else:
        per_class = np.minimum(class_counts, int(k))
    chosen = [rng.choice(np.flatnonzero(labels == c), size=int(per_class[c]), replace=False)
              for c in range(n_classes) if per_class[c] > 0]  # fmt: skip
    return np.sort(np.concatenate(chosen))
