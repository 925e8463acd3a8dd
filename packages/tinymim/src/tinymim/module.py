"""LightningModules: relation distillation (``tinymim train``) and supervised fine-tuning (``tinymim finetune``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule
from torch import nn

from paperlab_core.errors import ConfigError, MissingFileError, UserError
from paperlab_core.logging import current_run_dir, log, save_torch_atomic, write_metrics
from tinymim.distill import (
    TARGETS,
    DistillHeads,
    DistillOptions,
    distillation_step,
    unused_student_parameters,
)
from tinymim.evaluate import knn_predict, pooled_features
from tinymim.models import FINETUNE_HEADS, ViTConfig, block_heads, build_vit, set_block_heads
from tinymim.optim import cosine_lr, effective_lr, param_groups
from tinymim.teacher import (
    Teacher,
    TeacherConfig,
    encoder_state_from_checkpoint,
    resolve_teacher,
    save_tinymim_checkpoint,
)


def _lr_lambda(module: LightningModule, warmup_epochs: float, min_lr: float, base_lr: float):
    trainer = module.trainer
    total = max(1, int(trainer.estimated_stepping_batches))
    epochs = max(1, trainer.max_epochs or 1)
    warmup = warmup_epochs * total / epochs
    return lambda step: cosine_lr(step, total, warmup, 1.0, min_lr / base_lr if base_lr > 0 else 0.0)


class TinyMIMDistill(LightningModule):
    """Distil a frozen MIM teacher into a randomly initialised ViT student (no labels, no reconstruction)."""

    def __init__(
        self,
        student: ViTConfig = ViTConfig(embed_dim=32, depth=4, num_heads=2, last_heads=4),
        teacher: TeacherConfig = TeacherConfig(),
        target: Literal[
            "relation_qk_vv", "relation_qq_kk_vv", "cls", "cls_mae", "feature"
        ] = "relation_qk_vv",
        relation_softmax: bool = True,
        legacy_log_of_softmax: bool = False,
        feature_site: Literal["block", "final", "ffn", "attn", "attn_residual", "qkv"] = "block",
        feature_beta: float = 2.0,
        cls_site: Literal["block", "final"] = "block",
        input: Literal["raw", "masked"] = "raw",
        mask_ratio: float = 0.75,
        mae_aux_weight: float = 0.0,
        drop_path: float = 0.1,
        drop_path_schedule: Literal["constant", "linear"] = "constant",
        impl: Literal["fast", "reference"] = "fast",
        lr: float | None = 1.5e-3,
        blr: float = 1.5e-4,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_epochs: float = 1.0,
        min_lr: float = 0.0,
        weight_decay_cls_token: bool = True,
        freeze_unused_last_block: bool = True,
        knn_k: int = 20,
    ) -> None:
        """
        Args:
            student: student ViT (``last_heads``: the adaptive last block's head count = teacher relation heads).
            teacher: teacher source, target block (1-based) and relation heads.
            target: relation_qk_vv (Eq. 9, default), relation_qq_kk_vv (Table 7), cls (Eq. 6), cls_mae (Table 5),
                feature (Eqs. 7–8).
            relation_softmax: False gives Table 7's "no softmax" variant (MSE on the logits, proposed).
            legacy_log_of_softmax: the official ``softmax().log()`` form (underflows in fp16).
            feature_site: block (F_k), final (F_L), ffn (H̃_k), attn (H_k), attn_residual (Ĥ_k), qkv (Table 6).
            feature_beta: Smooth-L1 β of the feature target (Eq. 8).
            cls_site: CLS of teacher block k (``block``) or of its final normed output (``final``).
            input: raw image (paper default) or ``masked`` (mask token on masked patches, Table 12).
            mask_ratio: mask ratio of the masked input / MAE terms.
            mae_aux_weight: weight of the MAE auxiliary reconstruction (Table 12); needs ``input=masked``.
            drop_path: student drop path (teacher: 0).
            drop_path_schedule: constant (official code; 0 in the adaptive last block) or linear.
            impl: fast (truncated, SDPA, inference mode) or reference (full forward with explicit maps).
            lr: absolute learning rate; overrides ``blr``.
            blr: base learning rate, ``lr = blr × batch / 256``.
            weight_decay: AdamW weight decay (none on 1-D parameters and biases).
            betas: AdamW betas (0.9, 0.95).
            warmup_epochs: linear warm-up epochs before the half-cosine to ``min_lr``.
            min_lr: final learning rate.
            weight_decay_cls_token: decay the cls token (official code).
            freeze_unused_last_block: freeze student parameters the target never reaches (spec §2.4).
            knn_k: neighbours of the k-NN test protocol (``tinymim evaluate`` on a distillation checkpoint).
        """
        super().__init__()
        self.save_hyperparameters()
        if target not in TARGETS:
            raise ConfigError(f"model.target {target!r} unknown (expected one of {', '.join(TARGETS)})")
        if knn_k < 1:
            raise ConfigError(f"model.knn_k must be at least 1, got {knn_k}")
        self.student_config = student if isinstance(student, ViTConfig) else ViTConfig(**student)
        self.teacher_config = teacher if isinstance(teacher, TeacherConfig) else TeacherConfig(**teacher)
        self.options = DistillOptions(
            target=target,
            relation_softmax=relation_softmax,
            legacy_log_of_softmax=legacy_log_of_softmax,
            feature_site=feature_site,
            feature_beta=feature_beta,
            cls_site=cls_site,
            input=input,
            mask_ratio=mask_ratio,
            mae_aux_weight=mae_aux_weight,
            impl=impl,
        )
        self.student = build_vit(self.student_config, drop_path, drop_path_schedule)
        self.frozen_names: list[str] = []
        if freeze_unused_last_block:
            self.frozen_names = unused_student_parameters(self.student, self.options)
            params = dict(self.student.named_parameters())
            for name in self.frozen_names:
                params[name].requires_grad_(False)
        self.heads: DistillHeads | None = None
        self._teacher: Teacher | None = None
        self._epoch_losses: list[float] = []
        self._epoch_times: list[float] = []
        self._running: list[float] = []
        self._epoch_start = 0.0
        self._knn_bank: tuple[torch.Tensor, torch.Tensor, int] | None = None

    # ------------------------------------------------------------------ teacher (kept out of the state dict)
    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            self.set_teacher(self.build_teacher(allow_pretrain=True))
        assert self._teacher is not None
        return self._teacher

    def build_teacher(self, allow_pretrain: bool = True) -> Teacher:
        config = self.teacher_config
        fast_dev = bool(getattr(self._trainer, "fast_dev_run", False)) if self._trainer is not None else False
        if config.source.startswith("builtin") and fast_dev:
            try:
                return resolve_teacher(config, self.student_config.depth, self.student_config.img_size, False)
            except FileNotFoundError:
                log(
                    "tinymim: fast_dev_run and the builtin teacher is not cached: using a random teacher for the smoke run"
                )
                random_cfg = TeacherConfig(
                    "random", "default_teacher", config.target_block, config.relation_heads
                )
                return resolve_teacher(random_cfg, self.student_config.depth, self.student_config.img_size)
        return resolve_teacher(
            config, self.student_config.depth, self.student_config.img_size, allow_pretrain
        )

    def set_teacher(self, teacher: Teacher) -> None:
        """Attach a teacher without registering it as a submodule (not saved, not optimised)."""
        object.__setattr__(self, "_teacher", teacher.to(self.device))
        if self.heads is None:
            self.make_heads(teacher.embed_dim)
        log(
            f"tinymim: teacher {teacher.source} ({teacher.depth} blocks, width {teacher.embed_dim}), targets from "
            f"block {teacher.target_block} with {teacher.relation_heads} heads; student last block "
            f"{self.student.blocks[-1].attn.num_heads} heads"
        )

    def make_heads(self, teacher_dim: int) -> None:
        """The trainable extras of the target (projections to the teacher width, mask token, decoder)."""
        heads = DistillHeads(self.student, teacher_dim, self.options, self.student_config)
        self.heads = heads.to(self.device)

    def setup(self, stage: str) -> None:
        """Training needs the teacher; testing (k-NN of the student) does not, so it never builds one."""
        if stage == "fit" and self._teacher is None:
            self.set_teacher(self.build_teacher())

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        assert self.heads is not None
        return distillation_step(
            self.student, self.teacher, self.heads, batch["teacher"], batch["student"], self.options
        )

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self(batch)
        loss = terms["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"distillation loss is {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, sync_dist=True)
        for name, value in terms.items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=False, on_epoch=True, sync_dist=True)
        self._running.append(float(loss.detach()))
        return loss

    def on_train_epoch_start(self) -> None:
        self.teacher.eval()
        self._running = []
        self._epoch_start = time.time()

    def on_train_epoch_end(self) -> None:
        if self._running:
            self._epoch_losses.append(sum(self._running) / len(self._running))
            self._epoch_times.append(time.time() - self._epoch_start)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        assert self.heads is not None
        named = [(f"student.{n}", p) for n, p in self.student.named_parameters()]
        named += [(f"heads.{n}", p) for n, p in self.heads.named_parameters()]
        groups = param_groups(named, hp.weight_decay, hp.weight_decay_cls_token)
        for group in groups:
            group.pop("names")
        batch = self.trainer.datamodule.hparams.batch_size if self.trainer.datamodule is not None else 128
        base_lr = effective_lr(hp.lr, hp.blr, batch * max(1, self.trainer.world_size))
        optimizer = torch.optim.AdamW(groups, lr=base_lr, betas=tuple(hp.betas))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _lr_lambda(self, hp.warmup_epochs, hp.min_lr, base_lr)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ outputs
    def checkpoint_meta(self) -> dict[str, Any]:
        teacher = self._teacher
        return {
            "source": "tinymim train",
            "target": self.options.target,
            "teacher": {
                "source": teacher.source if teacher else self.teacher_config.source,
                "weight_hash": teacher.weight_hash if teacher else "",
                "target_block": teacher.target_block if teacher else self.teacher_config.target_block,
                "relation_heads": teacher.relation_heads if teacher else None,
            },
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["tinymim"] = {
            "arch": self.student_config.to_dict(),
            "block_heads": block_heads(self.student),
            **self.checkpoint_meta(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the heads from the stored shapes (only projections depend on the teacher's width)."""
        state = checkpoint.get("state_dict", {})
        if self.heads is None and any(k.startswith("heads.") for k in state):
            projection = state.get("heads.projections.0.weight")
            self.make_heads(int(projection.shape[0]) if projection is not None else 0)

    # ------------------------------------------------------------------ test: k-NN of the student
    def on_test_start(self) -> None:
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "knn_bank"):
            raise UserError("the k-NN test of a distilled student needs the tinymim data module")
        images, labels, num_classes = datamodule.knn_bank()
        self.student.eval()
        bank = pooled_features(self.student, images.to(self.device))
        self._knn_bank = (bank, labels.to(self.device), num_classes)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """k-NN top-1 (``test/knn_acc1``) of the student's pooled features against the labelled train split."""
        assert self._knn_bank is not None
        bank, bank_labels, num_classes = self._knn_bank
        images, labels = batch
        predicted = knn_predict(
            bank, bank_labels, pooled_features(self.student, images), self.hparams.knn_k, num_classes
        )
        accuracy = (predicted == labels).float().mean()
        self.log(
            "test/knn_acc1", accuracy, prog_bar=True, on_epoch=True, sync_dist=True, batch_size=len(labels)
        )

    def on_test_end(self) -> None:
        self._knn_bank = None

    def on_fit_end(self) -> None:
        if not self.trainer.is_global_zero:
            return
        run_dir = current_run_dir()
        summary = {
            "distill": {
                "epoch_losses": self._epoch_losses,
                "epoch_seconds": self._epoch_times,
                "loss_first_epoch": self._epoch_losses[0] if self._epoch_losses else None,
                "loss_last_epoch": self._epoch_losses[-1] if self._epoch_losses else None,
                "frozen_parameters": self.frozen_names,
                **self.checkpoint_meta(),
            }
        }
        if run_dir is not None:
            path = save_tinymim_checkpoint(
                run_dir / "student.pth", self.student, self.student_config, self.checkpoint_meta()
            )
            summary["distill"]["student_checkpoint"] = str(path)
            write_metrics(run_dir, summary)
            log(f"tinymim: distilled student written to {path}")
            log(
                next_steps_hint(run_dir, path, getattr(self.trainer.datamodule, "hparams", {}).get("dataset"))
            )


def next_steps_hint(run_dir: Path, student: Path, dataset: str | None) -> str:
    """What to run after ``tinymim train``: the k-NN evaluation and the supervised fine-tuning of the student."""
    data = "" if dataset in (None, "embedded") else f" --data.dataset {dataset}"
    return (
        f"tinymim: next: `tinymim evaluate --ckpt {run_dir / 'checkpoints' / 'last.ckpt'}` (k-NN top-1), then "
        f"`tinymim finetune --ckpt {student}{data}` (supervised fine-tuning, tested at the end; compare with "
        f"`--ckpt none`, training from scratch)"
    )


def load_student_state(path: str | Path) -> tuple[dict[str, torch.Tensor], ViTConfig, dict[str, Any]]:
    """Student encoder weights + architecture from a tinymim ``.pth`` or a Lightning ``.ckpt`` of ``train``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("checkpoint", path, "a `tinymim train` .ckpt or a tinymim .pth")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(f"{path} cannot be read as a checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(blob, dict) and "tinymim" in blob and "state_dict" in blob:
        meta = blob["tinymim"]
        state = {k[len("student.") :]: v for k, v in blob["state_dict"].items() if k.startswith("student.")}
    elif isinstance(blob, dict) and "meta" in blob and "arch" in blob["meta"]:
        meta = blob["meta"]
        state = encoder_state_from_checkpoint(blob, path)
    else:
        raise UserError(
            f"{path}: not a tinymim checkpoint (expected a `tinymim train` .ckpt or a student .pth)"
        )
    return state, ViTConfig(**meta["arch"]), meta


class TinyMIMFinetune(LightningModule):
    """Supervised fine-tuning with the MAE recipe (global average pooling + fc_norm, layer decay, mixup)."""

    def __init__(
        self,
        init: str | None = None,
        student: ViTConfig = ViTConfig(embed_dim=32, depth=4, num_heads=2),
        heads: Literal["standard", "adaptive"] = "standard",
        num_classes: int = 10,
        drop_path: float = 0.1,
        layer_decay: float | None = None,
        lr: float | None = 2e-3,
        blr: float = 5e-4,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_epochs: float = 5.0,
        min_lr: float = 1e-6,
        label_smoothing: float = 0.1,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mixup_switch_prob: float = 0.5,
    ) -> None:
        """
        Args:
            init: a distilled/MAE checkpoint (tinymim ``.pth`` or ``train`` ``.ckpt``); None or ``none`` = scratch.
            student: architecture for scratch runs (a checkpoint's recorded architecture wins).
            heads: ``standard`` head counts (official fine-tuning; ViT-T 3 heads) or ``adaptive`` (as distilled).
            num_classes: classifier outputs.
            drop_path: stochastic depth (linear ramp, as in MAE fine-tuning).
            layer_decay: layer-wise lr decay (0.65 in the paper recipe); None disables it.
            lr: absolute learning rate; overrides ``blr``.
            blr: base learning rate, ``lr = blr × batch / 256``.
            weight_decay: AdamW weight decay.
            betas: AdamW betas.
            warmup_epochs: linear warm-up epochs.
            min_lr: final learning rate of the cosine.
            label_smoothing: label smoothing.
            mixup: mixup alpha (0 disables).
            cutmix: cutmix alpha (0 disables).
            mixup_switch_prob: probability of cutmix when both are enabled.
        """
        super().__init__()
        self.save_hyperparameters()
        config = student if isinstance(student, ViTConfig) else ViTConfig(**student)
        state, meta = None, {}
        if init and init.lower() != "none":
            state, config, meta = load_student_state(init)
            self.hparams["student"] = config.to_dict()  # plain data: the checkpoint loads with weights_only
        self.init_config = config
        distilled_heads = list(meta.get("block_heads", config.block_heads()))
        standard = (
            FINETUNE_HEADS.get(config.embed_dim, config.num_heads)
            if config.embed_dim in FINETUNE_HEADS
            else config.num_heads
        )
        ft_config = ViTConfig(**{**config.to_dict(), "last_heads": None, "num_heads": standard})
        self.model = build_vit(ft_config, drop_path, "linear", num_classes, "avg", fixed_pos_embed=False)
        if heads == "adaptive":
            for blk, count in zip(self.model.blocks, distilled_heads, strict=True):
                set_block_heads(blk, int(count))
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith("norm.")}
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            bad = [k for k in missing if not k.startswith(("head", "fc_norm"))]
            if bad or unexpected:
                raise UserError(
                    f"{init}: missing {bad[:5]} / unexpected {unexpected[:5]} parameters for fine-tuning"
                )
            if block_heads(self.model) != distilled_heads:
                log(
                    f"tinymim: fine-tuning with heads {block_heads(self.model)} (distilled with {distilled_heads})"
                )
        nn.init.trunc_normal_(self.model.head.weight, std=2e-5)
        nn.init.zeros_(self.model.head.bias)
        self.model_config = ft_config
        self.mixup_fn = None
        if mixup > 0 or cutmix > 0:
            from timm.data import Mixup

            self.mixup_fn = Mixup(
                mixup_alpha=mixup,
                cutmix_alpha=cutmix,
                switch_prob=mixup_switch_prob,
                label_smoothing=label_smoothing,
                num_classes=num_classes,
            )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        if self.mixup_fn is not None and images.shape[0] % 2 == 0:
            images, soft = self.mixup_fn(images, labels)
            loss = torch.sum(-soft * F.log_softmax(self(images), dim=-1), dim=-1).mean()
        else:
            loss = F.cross_entropy(self(images), labels, label_smoothing=self.hparams.label_smoothing)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def _eval(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        images, labels = batch
        logits = self(images)
        self.log(f"{stage}/loss", F.cross_entropy(logits, labels), on_epoch=True, sync_dist=True)
        self.log(
            f"{stage}/acc1",
            (logits.argmax(-1) == labels).float().mean(),
            prog_bar=True,
            on_epoch=True,
            sync_dist=True,
        )
        if logits.shape[-1] >= 10:
            top5 = logits.topk(5, dim=-1).indices.eq(labels[:, None]).any(-1).float().mean()
            self.log(f"{stage}/acc5", top5, on_epoch=True, sync_dist=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval(batch, "test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Make the configuration stored by the CLI self-contained: the architecture that was built replaces
        ``init`` (the weights are in the checkpoint), so ``tinymim evaluate --ckpt`` needs no other file."""
        stored = checkpoint.get("paperlab", {}).get("config", {}).get("model")
        if isinstance(stored, dict):
            stored["init"] = None
            stored["student"] = self.init_config.to_dict()

    def on_fit_end(self) -> None:
        """``finetuned.pth``: the classifier's weights and architecture, next to the Lightning checkpoints."""
        run_dir = current_run_dir()
        if run_dir is None or not self.trainer.is_global_zero:
            return
        path = save_torch_atomic(
            {
                "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "meta": {"arch": self.model_config.to_dict(), "init": self.hparams.init},
            },
            run_dir / "finetuned.pth",
        )
        write_metrics(run_dir, {"finetuned_checkpoint": str(path)})
        log(f"tinymim: fine-tuned classifier written to {path}")

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = param_groups(
            self.model.named_parameters(), hp.weight_decay, True, hp.layer_decay, self.model_config.depth
        )
        for group in groups:
            group.pop("names")
        batch = self.trainer.datamodule.hparams.batch_size if self.trainer.datamodule is not None else 128
        base_lr = effective_lr(hp.lr, hp.blr, batch * max(1, self.trainer.world_size))
        for group in groups:
            group["lr"] = base_lr * group["lr_scale"]
        optimizer = torch.optim.AdamW(groups, lr=base_lr, betas=tuple(hp.betas))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _lr_lambda(self, hp.warmup_epochs, hp.min_lr, base_lr)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
