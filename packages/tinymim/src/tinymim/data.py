"""LightningDataModule for distillation (two views, no labels) and fine-tuning (labels).

In-memory datasets (embedded, digits, CIFAR subset, CIFAR pickles, MNIST) are kept as float tensors and augmented
on the device one batch at a time (:mod:`tinymim.augment`); ImageFolder/ImageNet crops per sample with PIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset

from paperlab_core.data import require_dir
from paperlab_core.errors import ConfigError, MissingFileError
from tinymim import augment, datasets

DatasetName = Literal[
    "embedded",
    "digits32",
    "digits17",
    "digits65",
    "cifar10-subset",
    "cifar10",
    "cifar100",
    "mnist",
    "imagefolder",
]
DATASETS: tuple[str, ...] = DatasetName.__args__
#: what ``--data.root`` must hold, per dataset (for the one-line error when it does not exist)
ROOT_LAYOUT = {
    "cifar10-subset": "the CIFAR-10 JPEG subset: <root>/<class>/0000.jpg ... 0199.jpg",
    "cifar10": "the folder holding cifar-10-batches-py/ (python pickle batches)",
    "cifar100": "the folder holding cifar-100-python/ (python pickle batches)",
    "mnist": "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    "imagefolder": "train/<class>/* and val/<class>/* (ImageNet layout)",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Splits:
    """Train images (for distillation: the unlabelled pool), labelled train and test tensors, stats."""

    pool: torch.Tensor | Dataset
    train_images: torch.Tensor | Dataset
    train_labels: torch.Tensor | None
    test_images: torch.Tensor | Dataset
    test_labels: torch.Tensor | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int


_SPLIT_CACHE: dict[tuple[Any, ...], Splits] = {}


def dataset_geometry(name: str) -> tuple[int, int]:
    """(image size, patch size) of a dataset key, as used by the presets."""
    return {"digits17": (8, 2), "digits65": (16, 2)}.get(name, (32, 4))


def load_splits(name: str, root: str | None = None, pool_size: int = 5000, seed: int = 0) -> Splits:
    """Load (and cache per process) the tensors of one dataset key."""
    key = (name, root, pool_size, seed)
    if key in _SPLIT_CACHE:
        return _SPLIT_CACHE[key]
    if name == "embedded":
        train_x, train_y = datasets.shapes10(5000, seed=seed, offset=0)
        test_x, test_y = datasets.shapes10(1000, seed=seed, offset=1_000_000)
        pool = torch.cat([datasets.stills32(pool_size, seed=seed), train_x])
        mean, std = datasets.per_channel_stats(pool)
        splits = Splits(pool, train_x, train_y, test_x, test_y, mean, std, 10)
    elif name in {"digits32", "digits17", "digits65"}:
        size = {"digits32": 32, "digits17": 8, "digits65": 16}[name]
        train_x, train_y, test_x, test_y = datasets.digits(size=size)
        mean, std = datasets.per_channel_stats(train_x)
        splits = Splits(train_x, train_x, train_y, test_x, test_y, mean, std, 10)
    elif name == "cifar10-subset":
        train_x, train_y, test_x, test_y = datasets.cifar_jpeg_subset(root)
        mean, std = datasets.per_channel_stats(train_x)
        splits = Splits(train_x, train_x, train_y, test_x, test_y, mean, std, 10)
    elif name in {"cifar10", "cifar100"}:
        if root is None:
            raise ConfigError(f"--data.root is required for {name} ({ROOT_LAYOUT[name]})")
        train_x, train_y = datasets.cifar_pickle(root, name, train=True)
        test_x, test_y = datasets.cifar_pickle(root, name, train=False)
        mean, std = datasets.per_channel_stats(train_x)
        splits = Splits(
            train_x, train_x, train_y, test_x, test_y, mean, std, 10 if name == "cifar10" else 100
        )
    elif name == "mnist":
        images, labels = datasets.mnist_test(root)
        gen = np.random.default_rng(0)
        order = torch.from_numpy(gen.permutation(len(labels)))
        train_idx, test_idx = order[:8000], order[8000:]
        mean, std = datasets.per_channel_stats(images[train_idx])
        splits = Splits(
            images[train_idx],
            images[train_idx],
            labels[train_idx],
            images[test_idx],
            labels[test_idx],
            mean,
            std,
            10,
        )
    else:
        raise ConfigError(f"unknown dataset {name!r} (expected one of {', '.join(DATASETS)})")
    _SPLIT_CACHE[key] = splits
    return splits


def imagefolder_splits(
    root: str | None, img_size: int, rand_augment: str | None = None, reprob: float = 0.0
) -> Splits:
    """ImageFolder/ImageNet layout ``root/train/<class>/*`` and ``root/val/<class>/*`` (bicubic crops)."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    if root is None:
        raise ConfigError(f"--data.root is required for imagefolder ({ROOT_LAYOUT['imagefolder']})")
    base = Path(root)
    for split in ("train", "val"):
        if not (base / split).is_dir():
            raise MissingFileError(
                "folder",
                base / split,
                f"ImageFolder data needs {base}/train/<class>/*.JPEG and {base}/val/<class>/*.JPEG; "
                "ImageNet val must be sorted into class folders",
            )
    bicubic = T.InterpolationMode.BICUBIC
    train_tf = T.Compose(
        [
            T.RandomResizedCrop(img_size, scale=(0.2, 1.0), interpolation=bicubic),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
        ]
    )
    eval_tf = T.Compose(
        [T.Resize(int(round(img_size / 0.875)), interpolation=bicubic), T.CenterCrop(img_size), T.ToTensor()]
    )
    if rand_augment or reprob > 0:
        from timm.data import create_transform

        train_tf = create_transform(
            img_size,
            is_training=True,
            auto_augment=rand_augment,
            re_prob=reprob,
            interpolation="bicubic",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        )
    train = ImageFolder(str(base / "train"), transform=train_tf)
    test = ImageFolder(str(base / "val"), transform=eval_tf)
    return Splits(train, train, None, test, None, IMAGENET_MEAN, IMAGENET_STD, len(train.classes))


def low_label_indices(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """``per_class`` examples of every class, chosen with a fixed seed (the low-label protocol)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels.numpy() == cls)
        if len(idx) < per_class:
            raise ConfigError(f"class {cls} has only {len(idx)} examples, {per_class} requested")
        chosen.append(rng.choice(idx, size=per_class, replace=False))
    return torch.from_numpy(np.sort(np.concatenate(chosen)))


class TinyMIMDataModule(LightningDataModule):
    """Data for ``tinymim train`` (distillation) and ``tinymim finetune`` (classification)."""

    def __init__(
        self,
        dataset: str = "embedded",
        root: str | None = None,
        mode: Literal["distill", "finetune"] = "distill",
        batch_size: int = 128,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        img_size: int = 32,
        epoch_size: int | None = 5000,
        pool_size: int = 5000,
        augment: Literal["rrc", "shift", "none"] = "rrc",
        crop_scale: tuple[float, float] = (0.2, 1.0),
        flip: bool = True,
        student_color_jitter: bool = True,
        color_jitter: float = 0.4,
        labels_per_class: int | None = None,
        label_seed: int = 0,
        rand_augment: str | None = None,
        reprob: float = 0.0,
        seed: int = 0,
    ) -> None:
        """
        Args:
            dataset: embedded (stills32 ∪ shapes10), digits32/digits17/digits65, cifar10-subset (shared JPEGs),
                cifar10/cifar100 (pickle batches under ``root``), mnist, imagefolder (``root/train``, ``root/val``).
            root: data folder for the real datasets (``--data.root``).
            mode: ``distill`` yields (teacher view, student view) without labels; ``finetune`` yields labels.
            batch_size: training batch size (per device).
            eval_batch_size: evaluation batch size.
            num_workers: DataLoader workers.
            img_size: output resolution of the crops (32 for the embedded data, 224 for ImageNet).
            epoch_size: images per distillation epoch drawn from the pool (None: the whole pool).
            pool_size: number of stills32 crops in the embedded unlabelled pool.
            augment: ``rrc`` RandomResizedCrop(crop_scale)+flip, ``shift`` ±1-px shifts (digits17), ``none``.
            crop_scale: area range of the random resized crop.
            flip: random horizontal flip (with ``rrc``).
            student_color_jitter: student-only ColorJitter (official code; the paper is silent).
            color_jitter: brightness/contrast/saturation strength of the jitter.
            labels_per_class: low-label fine-tuning (e.g. 20); None uses every training label.
            label_seed: seed of the low-label subset.
            rand_augment: timm RandAugment policy for fine-tuning (e.g. ``rand-m9-mstd0.5-inc1``); ImageFolder only.
            reprob: random-erasing probability for fine-tuning.
            seed: seed of the generated data.
        """
        super().__init__()
        self.save_hyperparameters()
        if dataset not in DATASETS:
            raise ConfigError(f"data.dataset {dataset!r} is unknown (expected one of {', '.join(DATASETS)})")
        if root is not None:
            layout = ROOT_LAYOUT.get(dataset, f"{dataset} reads no files")
            require_dir(root, "data root", f"--data.root must be an existing folder holding {layout}")
        if rand_augment and dataset != "imagefolder":
            raise ConfigError(
                f"data.rand_augment={rand_augment!r} needs per-image PIL transforms: only dataset=imagefolder supports "
                f"it (got dataset={dataset!r}); set data.rand_augment null"
            )
        self.splits: Splits | None = None
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def in_memory(self) -> bool:
        return self.hparams.dataset != "imagefolder"

    def load(self) -> Splits:
        if self.splits is None:
            hp = self.hparams
            if hp.dataset == "imagefolder":
                rand_augment = hp.rand_augment if hp.mode == "finetune" else None
                self.splits = imagefolder_splits(
                    hp.root, hp.img_size, rand_augment, hp.reprob if hp.mode == "finetune" else 0.0
                )
            else:
                self.splits = load_splits(hp.dataset, hp.root, hp.pool_size, hp.seed)
        return self.splits

    def setup(self, stage: str | None = None) -> None:
        self.load()

    @property
    def num_classes(self) -> int:
        return self.load().num_classes

    def _loader(
        self, dataset: Dataset, batch_size: int, train: bool, num_samples: int | None = None
    ) -> DataLoader:
        sampler = None
        if train:
            sampler = RandomSampler(dataset, num_samples=num_samples, generator=self.generator)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            drop_last=train and len(dataset) >= batch_size,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        splits, hp = self.load(), self.hparams
        if hp.mode == "distill":
            pool = splits.pool
            data = TensorDataset(pool) if isinstance(pool, torch.Tensor) else pool
            size = len(data)
            num = min(hp.epoch_size, size) if hp.epoch_size else None
            return self._loader(data, hp.batch_size, True, num)
        if isinstance(splits.train_images, torch.Tensor):
            images, labels = splits.train_images, splits.train_labels
            if hp.labels_per_class:
                idx = low_label_indices(labels, hp.labels_per_class, hp.label_seed)
                images, labels = images[idx], labels[idx]
            data = TensorDataset(images, labels)
        else:
            data = splits.train_images
        return self._loader(data, hp.batch_size, True)

    def _eval_loader(self) -> DataLoader:
        splits = self.load()
        if isinstance(splits.test_images, torch.Tensor):
            data = TensorDataset(splits.test_images, splits.test_labels)
        else:
            data = splits.test_images
        return self._loader(data, self.hparams.eval_batch_size, False)

    def val_dataloader(self) -> DataLoader | list:
        """Fine-tuning: the test split; distillation has no validation loop."""
        return [] if self.hparams.mode == "distill" else self._eval_loader()

    def test_dataloader(self) -> DataLoader:
        """The labelled test split (distillation checkpoints are tested with k-NN on it, see :meth:`knn_bank`)."""
        return self._eval_loader()

    def knn_bank(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Normalised labelled training images, their labels and the class count: the k-NN memory bank."""
        splits = self.load()
        if not isinstance(splits.train_images, torch.Tensor) or splits.train_labels is None:
            raise ConfigError(
                f"the k-NN test of a distilled student needs an in-memory dataset, not {self.hparams.dataset!r}: "
                "fine-tune it (`tinymim finetune --ckpt ...`) and evaluate that checkpoint"
            )
        return self._norm(self._resize(splits.train_images)), splits.train_labels, splits.num_classes

    # ------------------------------------------------------------------ device-side augmentation
    def _crop(self, images: torch.Tensor) -> torch.Tensor:
        hp = self.hparams
        if not self.in_memory or hp.augment == "none":
            return images
        if hp.augment == "shift":
            return augment.random_shift(images, 1, self.generator)
        boxes = augment.random_resized_crop_boxes(
            images.shape[0], tuple(hp.crop_scale), generator=self.generator
        )
        flips = torch.rand(images.shape[0], generator=self.generator) < (0.5 if hp.flip else 0.0)
        return augment.crop_and_flip(images, boxes, flips, hp.img_size)

    def _resize(self, images: torch.Tensor) -> torch.Tensor:
        if self.in_memory and images.shape[-1] != self.hparams.img_size:
            return torch.nn.functional.interpolate(images, size=self.hparams.img_size, mode="bilinear")
        return images

    def _norm(self, images: torch.Tensor) -> torch.Tensor:
        splits = self.load()
        return augment.normalise(images, splits.mean, splits.std)

    def distill_views(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Shared crop + flip; teacher: normalised; student: + ColorJitter (if enabled), normalised."""
        cropped = self._crop(images)
        student = cropped
        if self.hparams.student_color_jitter:
            strength = self.hparams.color_jitter
            student = augment.color_jitter(cropped, strength, strength, strength, generator=self.generator)
        return {"teacher": self._norm(cropped), "student": self._norm(student)}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        training = trainer is not None and trainer.training
        testing = trainer is not None and trainer.testing
        if self.hparams.mode == "distill" and not testing:
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            return self.distill_views(images)
        images, labels = batch[0], batch[1]
        if training:
            images = self._crop(images)
            if self.in_memory and self.hparams.reprob > 0:
                images = augment.random_erasing(images, self.hparams.reprob, self.generator)
        else:
            images = self._resize(images)
        return self._norm(images), labels
