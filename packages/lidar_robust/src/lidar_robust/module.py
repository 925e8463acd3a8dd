"""LightningModule: a segmentation network + its training recipe (augmentations, CE + Lovász loss, AdamW with a
cosine schedule) and the mIoU protocol (confusion matrix over classes 1..19 accumulated over the split)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch

from lidar_robust.augment import ROBUST_AUGMENTATIONS, SPEC_OUTLIER_RATIO, augment_batch
from lidar_robust.formats import CLASS_NAMES, NUM_CLASSES
from lidar_robust.losses import segmentation_loss
from lidar_robust.metrics import iou_per_class
from lidar_robust.models import MODEL_NAMES

#: Cylinder3D-like (ρ, φ, z) bins over ρ ∈ [0, 50] m, φ ∈ [−π, π), z ∈ [−4, 2] m (spec §4: 480 × 360 × 32)
CYLINDER_SHAPE = (480, 360, 32)

# augmentation and collation belong to the model's recipe, so the module (not the datamodule) defines the hook
warnings.filterwarnings("ignore", message=r".*overridden `on_before_batch_transfer`.*")


def build_network(name: str, cr: float, voxel_size: float, voxelization: str, backend: str,
                  range_image: tuple[int, int] = (64, 512),
                  cylinder_shape: Sequence[int] = CYLINDER_SHAPE) -> torch.nn.Module:  # fmt: skip
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r} (expected one of {', '.join(MODEL_NAMES)})")
    if name == "salsanext":
        from lidar_robust.models.salsanext import SalsaNext

        return SalsaNext(height=range_image[0], width=range_image[1], cr=cr)
    from lidar_robust.models.minkunet import GridConfig, MinkUNet

    shape = tuple(int(v) for v in cylinder_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            f"cylinder_shape must be three positive bin counts (rho, phi, z), got {cylinder_shape}"
        )
    grid = GridConfig(voxelization=voxelization, voxel_size=voxel_size, cylinder_shape=shape)
    return MinkUNet(cr=cr, grid=grid, backend=backend)


def collate(samples: Sequence[dict], device: torch.device | None = None) -> dict:
    """Concatenate samples into one point batch (``batch`` = sample index of every point)."""
    points = torch.from_numpy(np.concatenate([s["points"] for s in samples]))
    labels = torch.from_numpy(np.concatenate([s["labels"] for s in samples]).astype(np.int64))
    sizes = [len(s["points"]) for s in samples]
    batch = torch.repeat_interleave(torch.arange(len(samples)), torch.tensor(sizes))
    out = {"points": points, "labels": labels, "batch": batch, "batch_size": len(samples), "sizes": sizes}
    if device is not None:
        out = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
    return out


class SegmentationModule(pl.LightningModule):
    """``name``: minkunet (baseline), rlseg (RLSeg-style reconstruction: the same backbone + robustness
    augmentations, optional cylindrical voxels) or salsanext (range image). ``augment=None`` takes the model's
    recipe (rlseg: all robust augmentations; others: standard only). Recipe knobs (no effect without robust
    augmentations; defaults = the spec's proposal): ``robust_share``, the probability that a training scan enters
    the robust branch (1.0); ``outlier_ratio``, bounds of the global-outlier ratio ([0, 0.05] = U(0, 0.05);
    [0.001, 0.5] = log-uniform over the benchmark's range); ``robust_until``, the fraction of the training steps
    with the robust augmentations on (1.0 = throughout). ``cylinder_shape``: (ρ, φ, z) bins of the cylindrical
    grid (only with ``voxelization="cylindrical"``)."""

    def __init__(
        self,
        name: str = "minkunet",
        cr: float = 0.5,
        voxel_size: float = 0.15,
        voxelization: str = "cartesian",
        backend: str = "torch",
        augment: list[str] | None = None,
        augment_probability: float = 0.5,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        lovasz_weight: float = 1.0,
        augment_seed: int = 0,
        outlier_ratio: tuple[float, float] | list[float] = SPEC_OUTLIER_RATIO,
        robust_until: float = 1.0,
        robust_share: float = 1.0,
        cylinder_shape: tuple[int, int, int] | list[int] = CYLINDER_SHAPE,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if augment is None:
            augment = list(ROBUST_AUGMENTATIONS) if name == "rlseg" else []
        unknown = set(augment) - set(ROBUST_AUGMENTATIONS)
        if unknown:
            raise ValueError(
                f"unknown augmentations {sorted(unknown)} (expected {', '.join(ROBUST_AUGMENTATIONS)})"
            )
        self.augment = list(augment)
        if len(outlier_ratio) != 2 or not 0.0 <= outlier_ratio[0] < outlier_ratio[1]:
            raise ValueError(f"outlier_ratio must be [low, high] with 0 <= low < high, got {outlier_ratio}")
        if not 0.0 <= robust_until <= 1.0:
            raise ValueError(f"robust_until must be in [0, 1], got {robust_until}")
        if not 0.0 <= robust_share <= 1.0:
            raise ValueError(f"robust_share must be in [0, 1], got {robust_share}")
        self.outlier_ratio = (float(outlier_ratio[0]), float(outlier_ratio[1]))
        self.net = build_network(name, cr, voxel_size, voxelization, backend, cylinder_shape=cylinder_shape)
        self._rng = np.random.default_rng(augment_seed)
        self.register_buffer(
            "confusion", torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long), persistent=False
        )

    # ---------------------------------------------------------------------------------------- data
    def on_before_batch_transfer(self, batch: list[dict], dataloader_idx: int) -> dict:
        if self.trainer is not None and self.trainer.training:
            robust = self.augment if self._robust_phase() else []
            batch = augment_batch(
                batch,
                self._rng,
                robust,
                self.hparams.augment_probability,
                self.outlier_ratio,
                self.hparams.robust_share,
            )
        return collate(batch)

    def _robust_phase(self) -> bool:
        """Whether the robust augmentations are on at the current step (``robust_until`` of the budget)."""
        until = self.hparams.robust_until
        if until >= 1.0:
            return True
        total = int(self.trainer.estimated_stepping_batches)
        return self.trainer.global_step < until * total

    def forward(self, batch: dict) -> torch.Tensor:
        return self.net(batch["points"], batch["batch"], batch["batch_size"])

    # ---------------------------------------------------------------------------------------- steps
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits = self(batch)
        loss = segmentation_loss(logits, batch["labels"], self.hparams.lovasz_weight)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["batch_size"], sync_dist=True)
        return loss

    def _accumulate(self, batch: dict) -> None:
        pred = self(batch)[:, 1:].argmax(1) + 1
        keep = batch["labels"] != 0
        index = batch["labels"][keep] * NUM_CLASSES + pred[keep]
        self.confusion += torch.bincount(index, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)

    def _log_miou(self, stage: str) -> None:
        confusion = self.confusion
        if self.trainer.world_size > 1:
            confusion = self.trainer.strategy.reduce(confusion.float(), reduce_op="sum").long()
        iou = iou_per_class(confusion.cpu().numpy())
        self.log(
            f"{stage}/miou", float(np.nanmean(iou)) * 100.0 if np.isfinite(iou).any() else 0.0, prog_bar=True
        )
        if stage == "test":
            for name, value in zip(CLASS_NAMES[1:], iou, strict=True):
                if np.isfinite(value):
                    self.log(f"test/iou_{name}", float(value) * 100.0)
        self.confusion.zero_()

    def on_validation_epoch_start(self) -> None:
        self.confusion.zero_()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._accumulate(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_miou("val")

    def on_test_epoch_start(self) -> None:
        self.confusion.zero_()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._accumulate(batch)

    def on_test_epoch_end(self) -> None:
        self._log_miou("test")

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self.trainer is not None else 1
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@torch.inference_mode()
def predict_samples(net: torch.nn.Module, samples: Sequence[dict], device: torch.device, batch_size: int = 2
                    ) -> list[np.ndarray]:  # fmt: skip
    """Per-point learning-id predictions (classes 1..19) for each sample, in order."""
    net.eval()
    out: list[np.ndarray] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = collate(chunk, device)
        pred = (net(batch["points"], batch["batch"], batch["batch_size"])[:, 1:].argmax(1) + 1).cpu().numpy()
        out += np.split(pred, np.cumsum(batch["sizes"])[:-1])
    return out
