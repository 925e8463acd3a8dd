"""LightningDataModule of a distillation run: the image set, and index loaders that drive the module.

A distillation iteration is not a minibatch of data, so the training loader yields iteration indices (one per
training step) and the test loader yields evaluation-network indices (one fresh net per test step). Their
lengths come from the LightningModule (``planned_iterations`` / ``planned_eval_nets``).
"""

from __future__ import annotations

from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader

from doorping.datasets import DATASETS, ImageSet, load_dataset
from paperlab_core.data import require_dir
from paperlab_core.errors import ConfigError


class DistillData(LightningDataModule):
    """The dataset of a run (spec §3).

    Args:
        name: digits (embedded default), mnist-offline, cifar10-subset (``../shared/data``), mnist, fashionmnist,
            cifar10, cifar100, svhn, stl10 (native files under ``root``, downloaded when online).
        root: data folder (``--data.root``); default ``$PAPERLAB_DATA``, else ``~/.cache/paperlab/doorping``
            (the offline presets default to ``../shared/data``).
        split_seed: seed of the stratified train/test split of digits and mnist-offline.
    """

    def __init__(self, name: str = "digits", root: str | None = None, split_seed: int = 0) -> None:
        super().__init__()
        if name not in DATASETS:
            raise ConfigError(f"data.name {name!r}: expected one of {', '.join(DATASETS)}")
        if root is not None:
            require_dir(root, "data root", "data.root must be an existing folder holding the dataset")
        self.name, self.root, self.split_seed = name, root, split_seed
        self.images: ImageSet | None = None

    def setup(self, stage: str) -> None:
        if self.images is None:
            self.images = load_dataset(self.name, self.root, self.split_seed)

    def data_fingerprint(self) -> str:
        return f"{self.name}:{self.split_seed}"

    def _module(self):  # the LightningModule that plans the loop lengths
        return self.trainer.lightning_module

    def train_dataloader(self) -> DataLoader:
        return DataLoader(list(range(self._module().planned_iterations())), batch_size=1)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(list(range(self._module().planned_eval_nets())), batch_size=1)
