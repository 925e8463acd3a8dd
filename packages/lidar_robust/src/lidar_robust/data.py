"""Data: synthetic SemanticKITTI-format scans (the embedded default, generated in memory) or a SemanticKITTI root.

Samples are dicts of numpy arrays: ``points`` (N, 4) float32, ``labels`` (N,) learning ids 0..19, ``ring`` (N,)
ring ids of the clean scan (the generator's true rings, or the file-order estimate for real scans). Batches are
lists of samples: the LightningModule augments and collates them (augmentation belongs to the model's recipe).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from lidar_robust.formats import learning_labels, read_scan, sequence_frames
from lidar_robust.rings import ring_ids
from lidar_robust.synthetic import SensorConfig, generate_scan, scan_seed


def sample_from_scan(points: np.ndarray, labels: np.ndarray | None, ring: np.ndarray | None) -> dict:
    return {
        "points": np.ascontiguousarray(points, dtype=np.float32),
        "labels": np.zeros(len(points), np.int64) if labels is None else learning_labels(labels),
        "ring": ring_ids(points) if ring is None else np.asarray(ring, dtype=np.int64),
    }


class SyntheticScans(Dataset):
    """``count`` generated scans of sequence ``sequence`` (same per-scan seeds as ``lidar-robust generate``),
    produced lazily and kept in memory."""

    def __init__(self, count: int, sequence: str, seed: int, sensor: SensorConfig) -> None:
        self.count, self.sequence, self.seed, self.sensor = count, sequence, seed, sensor
        self._cache: dict[int, dict] = {}

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict:
        if index not in self._cache:
            scan = generate_scan(scan_seed(self.seed, self.sequence, index), self.sensor)
            self._cache[index] = sample_from_scan(scan.points, scan.labels, scan.ring)
        return self._cache[index]


class KittiScans(Dataset):
    """Scans of ``<root>/sequences/<seq>`` (with labels); ring ids from a ``rings/`` sidecar when present."""

    def __init__(self, root: str | Path, sequences: list[str], limit: int | None = None) -> None:
        self.items = [pair for seq in sequences for pair in sequence_frames(root, seq)][:limit]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        bin_path, label_path = self.items[index]
        scan = read_scan(bin_path, label_path)
        sidecar = bin_path.parent.parent / "rings" / (bin_path.stem + ".npy")
        ring = np.load(sidecar) if sidecar.is_file() else None
        return sample_from_scan(scan.points, scan.labels, ring)


def collate_list(batch: list[dict]) -> list[dict]:
    return list(batch)


class LidarDataModule(pl.LightningDataModule):
    """Embedded default: ``train_scans`` + ``val_scans`` synthetic scans (64 beams × ``azimuth``); with ``root``:
    SemanticKITTI sequences (training ``train_sequences``, validation/test ``val_sequences``)."""

    def __init__(
        self,
        root: str | None = None,
        train_sequences: list[str] | None = None,
        val_sequences: list[str] | None = None,
        train_scans: int = 64,
        val_scans: int = 12,
        azimuth: int = 512,
        seed: int = 0,
        batch_size: int = 2,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = root
        self.train_sequences = train_sequences or (["00"] if root is None else
                                                   ["00", "01", "02", "03", "04", "05", "06", "07", "09", "10"])  # fmt: skip
        self.val_sequences = val_sequences or ["08"]
        self.sensor = SensorConfig(azimuth=azimuth)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        hp = self.hparams
        if self.root is None:
            self.train_set = SyntheticScans(hp.train_scans, self.train_sequences[0], hp.seed, self.sensor)
            self.val_set = SyntheticScans(hp.val_scans, self.val_sequences[0], hp.seed, self.sensor)
        else:
            if stage in (None, "fit"):
                self.train_set = KittiScans(self.root, self.train_sequences)
            self.val_set = KittiScans(self.root, self.val_sequences)

    def data_fingerprint(self) -> str:
        return f"{self.root}|{self.train_sequences}|{self.val_sequences}|{self.sensor}"

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=collate_list)  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)
