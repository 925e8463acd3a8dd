"""Lightning wiring of the pre-training methods (``bolt train`` / ``bolt pretrain``) and their data.

The math lives in :mod:`bolt_ssl.pretrain`; this module adds the optimiser and schedule, the EMA update after
each optimiser step, per-epoch pretext diagnostics on held-out images, and the run outputs ``backbone.pt``
(a plain state dict of the online encoder) and ``pretrain_metrics.json``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from bolt_ssl.data import DataConfig, Dataset, channel_stats, load_dataset
from bolt_ssl.ema import ema_update_, tau_schedule
from bolt_ssl.models import ViTConfig
from bolt_ssl.perturb import PerturbConfig, make_generator
from bolt_ssl.pretrain import (
    EMAConfig,
    HeadsConfig,
    MAEConfig,
    PretrainNets,
    RankConfig,
    SSLConfig,
    pretext_diagnostics,
    ssl_step,
)
from paperlab_core.errors import ConfigError

LR_SCHEDULES = ("onecycle", "warmup_cosine", "constant")
BACKBONE_FILE = "backbone.pt"
#: the EMA target encoder ξ (BYOL-family methods), for ``--init-branch target`` without the full checkpoint
TARGET_BACKBONE_FILE = "backbone_target.pt"
PRETRAIN_METRICS = "pretrain_metrics.json"


@dataclass
class OptimConfig:
    """AdamW; ``onecycle`` (CPU presets), ``warmup_cosine`` (paper preset) or ``constant`` learning rate."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    schedule: str = "onecycle"
    warmup: float = 0.1

    def __post_init__(self) -> None:
        if self.schedule not in LR_SCHEDULES:
            raise ConfigError(f"optim.schedule {self.schedule!r}: expected one of {', '.join(LR_SCHEDULES)}")


class BoltData(pl.LightningDataModule):
    """Pre-training images (the unlabelled pool) and held-out images for the pretext diagnostics (val split).

    Labels are never read here. Images are served in [0, 1]; the model standardises them.
    """

    def __init__(
        self,
        name: str = "synthetic-retina",
        size: int = 28,
        root: str | None = None,
        file: str | None = None,
        as_rgb: bool = False,
        ordinal: bool = False,
        pool_extra: int = 0,
        pool_extra_match_stats: bool = True,
        n_pool: int = 4000,
        n_train: int = 1000,
        n_val: int = 200,
        n_test: int = 1000,
        prior: str = "retinamnist",
        seed: int = 0,
        split_seed: int = 0,
        csv: str | None = None,
        image_dir: str | None = None,
        image_col: str | None = None,
        label_col: str | None = None,
        onehot_cols: list[str] | None = None,
        batch_size: int = 128,
        max_val_images: int = 512,
    ) -> None:
        super().__init__()
        self.cfg = DataConfig(
            name, size, root, file, as_rgb, ordinal, pool_extra, pool_extra_match_stats, n_pool, n_train, n_val,
            n_test, prior, seed, split_seed, csv, image_dir, image_col, label_col, onehot_cols,
        )  # fmt: skip
        self.batch_size = batch_size
        self.max_val_images = max_val_images
        self.dataset: Dataset | None = None

    def load(self) -> Dataset:
        if self.dataset is None:
            self.dataset = load_dataset(self.cfg)
        return self.dataset

    def setup(self, stage: str | None = None) -> None:
        self.load()

    @property
    def stats(self) -> tuple[list[float], list[float]]:
        return channel_stats(self.load().pretrain_pool())

    @staticmethod
    def _unit(images: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0

    def train_dataloader(self) -> DataLoader:
        pool = self.load().pretrain_pool()
        if len(pool) < 2:
            raise ConfigError(f"the pre-training pool of {self.cfg.name} has {len(pool)} image(s) (need ≥ 2)")
        batch = min(self.batch_size, len(pool))
        return DataLoader(TensorDataset(self._unit(pool)), batch_size=batch, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        val = self.load().val.images[: self.max_val_images]
        return DataLoader(TensorDataset(self._unit(val)), batch_size=max(2, min(self.batch_size, len(val))))

    def data_fingerprint(self) -> str:
        data = self.load()
        return f"{data.name}:{data.md5 or ''}:{len(data.pretrain_pool())}"


class PretrainModule(pl.LightningModule):
    """BOLT and the baselines (``method``: bolt | token_byol | byol | mae) on one ViT and one schedule."""

    def __init__(
        self,
        method: Literal["bolt", "token_byol", "byol", "mae"] = "bolt",
        vit: ViTConfig = ViTConfig(),
        perturb: PerturbConfig = PerturbConfig(),
        rank: RankConfig = RankConfig(),
        ema: EMAConfig = EMAConfig(),
        heads: HeadsConfig = HeadsConfig(),
        optim: OptimConfig = OptimConfig(),
        mae: MAEConfig = MAEConfig(),
        token_source: Literal["per_branch", "shared_detached"] = "per_branch",
        image_aug: Literal["none", "shared", "independent"] = "shared",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.cfg = SSLConfig(method, perturb, rank, mae, token_source, image_aug)
        self.vit_cfg, self.ema_cfg, self.optim_cfg, self.seed = vit, ema, optim, seed
        self.nets = PretrainNets(method, vit, heads, mae, perturb, rank)
        self.history: list[dict[str, Any]] = []
        self._epoch_logs: list[dict[str, float]] = []
        self._started = 0.0
        self._images = 0

    # ----------------------------------------------------------------------------------------- setup
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not isinstance(datamodule, BoltData):
            return
        data = datamodule.load()
        if data.channels != self.vit_cfg.in_chans or data.size != self.vit_cfg.img_size:
            raise ConfigError(
                f"data {data.name} has {data.channels}-channel {data.size}-px images but the ViT expects "
                f"model.vit.in_chans {self.vit_cfg.in_chans} and model.vit.img_size {self.vit_cfg.img_size} "
                "(set them to match, or --data.as_rgb true for grey images)"
            )
        if stage == "fit":
            mean, std = datamodule.stats
            self.nets.norm_mean.copy_(torch.tensor(mean))
            self.nets.norm_std.copy_(torch.tensor(std))

    def configure_optimizers(self) -> Any:
        params = [p for p in self.nets.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        cfg = self.optim_cfg
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        if cfg.schedule == "constant":
            return optimizer
        if cfg.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total + 1)
        else:
            warm = max(int(cfg.warmup * total), 1)

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                return 0.5 * (1 + math.cos(math.pi * min(step - warm, total - warm) / max(total - warm, 1)))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ----------------------------------------------------------------------------------------- training
    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        (x,) = batch
        g = make_generator(x.device, self.seed, self.global_step, self.global_rank)
        out = ssl_step(self.nets, x, self.cfg, g)
        self.log_dict({f"train/{k}": v for k, v in out.logs.items()}, prog_bar=False, on_step=True, on_epoch=True,
                      batch_size=x.shape[0], sync_dist=True)  # fmt: skip
        self.log("loss", out.loss.detach(), prog_bar=True, batch_size=x.shape[0])
        self._images += x.shape[0]
        return out.loss

    def tau(self, step: int) -> float:
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        return tau_schedule(step, total, self.ema_cfg.tau_base, self.ema_cfg.schedule)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """EMA after each optimiser step (gradient accumulation: only on the stepping batch)."""
        if self.cfg.method == "mae":
            return
        accumulate = max(int(self.trainer.accumulate_grad_batches), 1)
        if (batch_idx + 1) % accumulate:
            return
        step = self.global_step - 1  # optimiser steps done before this update: τ_0 = τ_base
        tau = self.tau(step)
        target, online = self.nets.online_pairs()
        ema_update_(target, online, tau)
        self.log("train/tau", tau, on_step=True, on_epoch=False)

    # ----------------------------------------------------------------------------------------- diagnostics
    def _diagnose(self, x: torch.Tensor, batch_idx: int) -> dict[str, float]:
        g = make_generator(x.device, self.seed + 99_991, batch_idx, self.global_rank)
        return pretext_diagnostics(self.nets, x, self.cfg, g)

    def on_train_start(self) -> None:
        self._started = time.perf_counter()
        self._images = 0
        datamodule = getattr(self.trainer, "datamodule", None)
        if not isinstance(datamodule, BoltData) or self.history or self.trainer.limit_val_batches == 0:
            return
        was_training = self.training
        self.eval()
        logs = [self._diagnose(x.to(self.device), i) for i, (x,) in enumerate(datamodule.val_dataloader())]
        self.train(was_training)
        self.history.append({"epoch": -1, **_mean_logs(logs)})

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        (x,) = batch
        logs = self._diagnose(x, batch_idx)
        self._epoch_logs.append(logs)
        self.log_dict({f"val/{k}": v for k, v in logs.items()}, batch_size=x.shape[0], sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self._epoch_logs and not self.trainer.sanity_checking:
            self.history.append({"epoch": int(self.current_epoch), **_mean_logs(self._epoch_logs)})
        self._epoch_logs = []

    # ----------------------------------------------------------------------------------------- outputs
    def backbone_state(self, branch: str = "online") -> dict[str, Any]:
        """``backbone.pt``: plain tensors and builtins only (``torch.load(weights_only=True)`` reads it)."""
        encoder = self.nets.online if branch == "online" or self.cfg.method == "mae" else self.nets.target
        return {
            "kind": "bolt-backbone",
            "method": self.cfg.method,
            "branch": branch,
            "vit": asdict(self.vit_cfg),
            "state_dict": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
            "norm_mean": self.nets.norm_mean.cpu().tolist(),
            "norm_std": self.nets.norm_std.cpu().tolist(),
        }

    def pretrain_summary(self) -> dict[str, Any]:
        """Final pretext numbers, the per-epoch history and throughput."""
        wall = time.perf_counter() - self._started if self._started else 0.0
        final = self.history[-1] if self.history else {}
        d = self.nets.projector.net[-1].out_features if hasattr(self.nets, "projector") else None
        return {
            "method": self.cfg.method,
            "final": {k: v for k, v in final.items() if k != "epoch"},
            "history": self.history,
            "proj_dim": d,
            "collapse_floor": 0.5 / math.sqrt(d) if d else None,
            "steps": int(self.global_step),
            "wall_s": round(wall, 2),
            "images_per_s": round(self._images / wall, 1) if wall else None,
        }

    def on_fit_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        from paperlab_core.logging import save_torch_atomic, write_json_atomic

        folder = Path(self.trainer.default_root_dir)
        save_torch_atomic(self.backbone_state(), folder / BACKBONE_FILE)
        if self.cfg.method != "mae":  # MAE has no target network
            save_torch_atomic(self.backbone_state("target"), folder / TARGET_BACKBONE_FILE)
        write_json_atomic(folder / PRETRAIN_METRICS, self.pretrain_summary())

    # test / predict: features of held-out images (evaluate uses bolt_ssl.evaluate instead)
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nets.online(self.nets.normalise(x))


def module_from_config(model: dict[str, Any]) -> PretrainModule:
    """A :class:`PretrainModule` from the ``model`` section stored in a checkpoint (plain dicts)."""
    parts = {"vit": ViTConfig, "perturb": PerturbConfig, "rank": RankConfig, "ema": EMAConfig, "heads": HeadsConfig,
             "optim": OptimConfig, "mae": MAEConfig}  # fmt: skip
    kwargs = {k: parts[k](**v) if k in parts and isinstance(v, dict) else v for k, v in model.items()}
    return PretrainModule(**kwargs)


def _mean_logs(logs: list[dict[str, float]]) -> dict[str, float]:
    keys = logs[0].keys() if logs else []
    return {k: float(np.mean([entry[k] for entry in logs])) for k in keys}
