"""``MERModule``: a model of the registry, its imbalance-aware loss and the UF1/UAR/ACC (or AU) evaluation.

Wiring only: the math lives in :mod:`dfme.losses`, :mod:`dfme.metrics` and :mod:`dfme.models`. The network is
built in ``setup`` (its output size and the class counts come from the data), so a checkpoint restores into the
same architecture. Inputs arrive as uint8 clips (B, T, S, S, C) or float flows (B, C, 28, 28) and are normalised
on the device with the training set's channel statistics (buffers saved in the checkpoint).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule
from torch import nn
from torch.nn import functional as F

from dfme.labels import EMOTIONS
from dfme.losses import FOCAL_ALPHA, IMBALANCE, WEIGHT_REDUCTIONS, ImbalanceLoss
from dfme.metrics import ABSENT, au_scores, confusion_matrix, scores_from_confusion
from dfme.models.registry import MODEL_INPUTS, MODELS, build_model
from paperlab_core.errors import ConfigError

TASKS = ("emotion", "au")


class NormedLinear(nn.Module):
    """Cosine classifier: logits = cos(feature, class weight) (Cao et al.'s LDAM head)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.empty(in_features, out_features).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


def augment_clips(x: torch.Tensor, flip: bool, max_shift: float) -> torch.Tensor:
    """Random horizontal flip and translation by a whole number of pixels in ``[-⌊max_shift⌋, ⌊max_shift⌋]``, the
    same for all frames of a clip (border replicated).

    Whole pixels only: a fractional shift resamples the clip bilinearly — a blur applied at training time only,
    which attenuates the sub-pixel motion the onset-subtracted input carries and shifts the batch-norm statistics
    between training and test (docs/lab-notebook.md §6). ``x``: (B, C, T, H, W) float; randomness is drawn on
    ``x``'s device."""
    b, c, t, h, w = x.shape
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    sign = torch.ones(b, device=x.device, dtype=x.dtype)
    if flip:
        sign = torch.where(torch.rand(b, device=x.device) < 0.5, -sign, sign)
    theta[:, 0, 0] = sign
    theta[:, 1, 1] = 1.0
    pixels = int(math.floor(max_shift + 1e-6))
    if pixels > 0:
        shift = torch.randint(-pixels, pixels + 1, (b, 2), device=x.device).to(x.dtype)
        theta[:, 0, 2] = shift[:, 0] * 2 / w
        theta[:, 1, 2] = shift[:, 1] * 2 / h
    grid = F.affine_grid(theta, (b, c * t, h, w), align_corners=False)
    out = F.grid_sample(
        x.reshape(b, c * t, h, w), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.reshape(b, c, t, h, w)


class MERModule(LightningModule):
    """Micro-expression recognition (emotion or AU task) with one model of the registry.

    Args:
        name: ``r3d_18``, ``mc3_18``, ``r2plus1d_18``, ``s3d_lite``, ``ststnet`` or ``offapexnet``.
        width_mult: channel multiplier of the 3D CNNs (0.25 on CPU, 1.0 = published widths).
        dropout: before the linear head.
        legacy_torchvision_midplanes: R(2+1)D with torchvision's shared mid-channels (not parameter-matched).
        stream_inputs: STSTNet streams see ``all`` three maps or ``one_each``.
        imbalance: one of ``ce, inv_freq, cb, focal, balanced_sampler, ldam_drw, logit_adjust`` (spec §2.6).
        cb_beta, focal_gamma, focal_alpha, ldam_max_margin, ldam_scale, drw_start, drw_beta, logit_tau: their
            parameters (``drw_start``: share of ``max_epochs`` after which LDAM's re-weighting starts).
        weight_reduction: batch loss of ``inv_freq``/``cb``: ``mean`` = (1/B) Σ_i w_{y_i} CE_i (Cui et al.'s
            per-sample loss and code; default since 0.4.0) or ``weighted_mean`` = Σ_i w_{y_i} CE_i / Σ_i w_{y_i}
            (PyTorch's ``cross_entropy(weight=…)``; dfme ≤ 0.3).
        au_pos_weight: AU task: BCE ``pos_weight = n_neg / n_pos`` per AU; au_threshold: decision threshold.
        lr, weight_decay: AdamW with a cosine schedule over ``max_epochs``.
        flip, max_shift: clip augmentation (horizontal flip, ± ``max_shift`` px at the 112-px scale).
        clip_input: linked from ``data.clip_input`` (``onset_diff``: the input has T + 1 frames, the aligned onset
            frame first, which is subtracted from the other T before normalising).
        task: linked from ``data.task``. absent: the metrics' 0/0 convention (``skip`` or ``zero``).
    """

    def __init__(
        self,
        name: str = "r3d_18",
        width_mult: float = 0.25,
        dropout: float = 0.5,
        legacy_torchvision_midplanes: bool = False,
        stream_inputs: str = "all",
        imbalance: str = "ce",
        cb_beta: float = 0.999,
        focal_gamma: float = 2.0,
        focal_alpha: str = "none",
        ldam_max_margin: float = 0.5,
        ldam_scale: float = 30.0,
        drw_start: float = 0.8,
        drw_beta: float = 0.9999,
        logit_tau: float = 1.0,
        weight_reduction: str = "mean",
        au_pos_weight: bool = False,
        au_threshold: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        flip: bool = True,
        max_shift: float = 4.0,
        task: str = "emotion",
        clip_input: str = "frames",
        absent: str = "skip",
    ) -> None:
        super().__init__()
        checks = {
            "name": (name, MODELS), "imbalance": (imbalance, IMBALANCE), "focal_alpha": (focal_alpha, FOCAL_ALPHA),
            "stream_inputs": (stream_inputs, ("all", "one_each")), "task": (task, TASKS), "absent": (absent, ABSENT),
            "clip_input": (clip_input, ("frames", "onset_diff")), "weight_reduction": (weight_reduction, WEIGHT_REDUCTIONS),
        }  # fmt: skip
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(f"model.{key} must be one of {', '.join(allowed)}, got {value!r}")
        if task == "au" and imbalance != "ce":
            raise ConfigError(
                "model.imbalance applies to the emotion task; the AU task uses BCE (au_pos_weight)"
            )
        self.save_hyperparameters()
        self.inputs_kind = MODEL_INPUTS[name]
        self.net: nn.Module | None = None
        self.loss_fn: ImbalanceLoss | None = None
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.test_result: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------ setup
    def build(
        self, num_outputs: int, channels: int, counts: np.ndarray, au_pos: np.ndarray | None = None
    ) -> None:
        """Create the network, the normalisation buffers and the loss (idempotent)."""
        hp = self.hparams
        if self.net is None:
            self.net = build_model(
                hp.name,
                num_outputs,
                hp.width_mult,
                hp.dropout,
                hp.legacy_torchvision_midplanes,
                hp.stream_inputs,
            )
            if hp.imbalance == "ldam_drw":
                self.net.fc = NormedLinear(self.net.fc.in_features, num_outputs)
            self.register_buffer("norm_mean", torch.zeros(channels))
            self.register_buffer("norm_std", torch.ones(channels))
            self.register_buffer("au_pos_weight_", torch.ones(num_outputs))
        if hp.task == "emotion":
            max_epochs = (
                self.trainer.max_epochs if self._trainer is not None and self.trainer.max_epochs else 1
            )
            self.loss_fn = ImbalanceLoss(
                hp.imbalance, counts, hp.cb_beta, hp.focal_gamma, hp.focal_alpha, hp.ldam_max_margin, hp.ldam_scale,
                int(hp.drw_start * max(max_epochs, 1)), hp.drw_beta, hp.logit_tau, hp.weight_reduction,
            ).to(self.device)  # fmt: skip
        if au_pos is not None and hp.au_pos_weight:
            self.au_pos_weight_.copy_(torch.as_tensor(au_pos, dtype=torch.float32))

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        if dm is None:
            raise ConfigError("MERModule needs DFMEDataModule")
        if dm.inputs_kind != self.inputs_kind:
            raise ConfigError(
                f"model {self.hparams.name} needs {self.inputs_kind} inputs, the data gives {dm.inputs_kind}"
            )
        if dm.hparams.task != self.hparams.task:
            raise ConfigError(f"model.task {self.hparams.task} differs from data.task {dm.hparams.task}")
        au_pos = None
        if self.hparams.task == "au":
            targets = dm.targets[dm.train_index]
            pos = targets.sum(0)
            au_pos = np.where(pos > 0, (len(targets) - pos) / np.maximum(pos, 1), 1.0)
        self.build(dm.num_outputs, len(dm.norm_mean), dm.class_counts(), au_pos)
        if self.inputs_kind == "clip" and self.trainer.strategy.root_device.type == "cuda":
            # channels-last 3D convolutions are fast on cuDNN; on CPU they were 1.5× slower (docs/lab-notebook.md)
            self.net = self.net.to(memory_format=torch.channels_last_3d)
        if stage == "fit":
            self.norm_mean.copy_(torch.as_tensor(dm.norm_mean))
            self.norm_std.copy_(torch.as_tensor(dm.norm_std))

    # ------------------------------------------------------------------------------------------ forward
    def prepare_inputs(self, x: torch.Tensor, train: bool = False) -> torch.Tensor:
        """uint8 (B, T, S, S, C) (``onset_diff``: (B, T + 1, S, S, C), onset first) → normalised float
        (B, 3, T, S, S); flows (B, C, 28, 28) → normalised."""
        if self.inputs_kind != "clip":
            return (x.float() - self.norm_mean[:, None, None]) / self.norm_std[:, None, None]
        x = x.to(self.norm_mean.dtype) / 255.0
        if self.hparams.clip_input == "onset_diff":
            x = x[:, 1:] - x[:, :1]  # frame 0 is the aligned onset frame the data module prepends
        x = ((x - self.norm_mean) / self.norm_std).permute(0, 4, 1, 2, 3)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1, -1)
        if train and (self.hparams.flip or self.hparams.max_shift > 0):
            x = augment_clips(x, self.hparams.flip, self.hparams.max_shift * x.shape[-1] / 112.0)
        fmt = torch.channels_last_3d if x.device.type == "cuda" else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.prepare_inputs(x))

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        logits = self.net(self.prepare_inputs(x, train=True))
        if self.hparams.task == "emotion":
            loss = self.loss_fn(logits, y, self.current_epoch)
        else:
            loss = F.binary_cross_entropy_with_logits(logits, y.float(), pos_weight=self.au_pos_weight_)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(x))
        return loss

    def _collect(self, batch: tuple) -> None:
        x, y, index = batch
        self._outputs.append((self(x).detach(), y, index))

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: tuple, batch_idx: int) -> None:
        self._collect(batch)

    def _gathered(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits = torch.cat([o[0] for o in self._outputs])
        targets = torch.cat([o[1] for o in self._outputs])
        index = torch.cat([o[2] for o in self._outputs])
        self._outputs.clear()
        if self.trainer.world_size > 1:
            logits, targets, index = (self.all_gather(t).flatten(0, 1) for t in (logits, targets, index))
        return logits.float().cpu().numpy(), targets.cpu().numpy(), index.cpu().numpy()

    def evaluate_outputs(self, logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """Metrics of one evaluation pass (emotion: UF1/UAR/ACC + confusion; AU: macro/micro F1)."""
        if self.hparams.task == "emotion":
            cm = confusion_matrix(targets, logits.argmax(1), len(EMOTIONS))
            return {**scores_from_confusion(cm, self.hparams.absent), "confusion": cm.tolist()}
        names = [f"AU{a}" for a in self.trainer.datamodule.au_vocabulary]
        pred = 1.0 / (1.0 + np.exp(-logits)) >= self.hparams.au_threshold
        return au_scores(targets > 0.5, pred, names)

    def _epoch_end(self, prefix: str) -> dict[str, Any]:
        if not self._outputs:
            return {}
        logits, targets, index = self._gathered()
        result = self.evaluate_outputs(logits, targets)
        scalars = {k: v for k, v in result.items() if isinstance(v, float)}
        for key, value in scalars.items():
            self.log(f"{prefix}/{key}", value, prog_bar=key in ("uf1", "macro_f1"), rank_zero_only=True)
        result["index"] = index.tolist()
        result["logits"] = logits
        result["targets"] = targets
        return result

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        result = self._epoch_end("test")
        if not result:
            return
        dm = self.trainer.datamodule
        order = np.argsort(result["index"])
        index = np.asarray(result["index"])[order]
        logits, targets = result.pop("logits")[order], result.pop("targets")[order]
        result.pop("index")
        predictions = logits.argmax(1) if self.hparams.task == "emotion" else (logits > 0).astype(int)
        self.test_result = {
            **result,
            "fold": dm.hparams.fold,
            "sample_ids": dm.sample_ids[index].tolist(),
            "y_true": targets.astype(int).tolist(),
            "y_pred": predictions.tolist(),
        }
        from paperlab_core.lightning import MetricsJsonCallback
        from paperlab_core.logging import write_metrics

        # only inside a CLI run folder (a bare Trainer's default_root_dir is the working folder)
        run_dirs = [cb.run_dir for cb in self.trainer.callbacks if isinstance(cb, MetricsJsonCallback)]
        if self.trainer.is_global_zero and run_dirs:
            report = {
                k: v for k, v in self.test_result.items() if k not in ("y_true", "y_pred", "sample_ids")
            }
            write_metrics(run_dirs[0], {"test_report": {"task": self.hparams.task, **report}})

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        epochs = max(1, self.trainer.max_epochs or 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
