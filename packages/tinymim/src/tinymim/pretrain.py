"""In-package MAE pre-training (``tinymim pretrain-teacher``) and the cache of builtin teachers."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule

from paperlab_core.data import cache_root
from paperlab_core.errors import ConfigError, UserError
from paperlab_core.logging import log, write_json_atomic
from paperlab_core.runtime import seed_everything
from tinymim.data import TinyMIMDataModule, dataset_geometry
from tinymim.models import ARCHS, MaskedAutoencoder, ViTConfig
from tinymim.optim import cosine_lr, effective_lr, param_groups
from tinymim.teacher import save_tinymim_checkpoint


@dataclass
class PretrainConfig:
    """MAE pre-training recipe (mask 0.75, normalised-pixel loss, AdamW(0.9, 0.95), wd 0.05).

    Args:
        dataset: data key of :class:`tinymim.data.TinyMIMDataModule` (labels are never used).
        root: data folder for real datasets.
        arch: encoder architecture (key of ``tinymim.models.ARCHS``); ``last_heads`` is ignored (MAE uses the
            standard head count in every block).
        img_size: image size; None takes the dataset's (32, or 8/16 for digits17/digits65).
        patch_size: patch size; None takes the dataset's.
        decoder_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_heads: decoder heads.
        mask_ratio: fraction of masked patches.
        norm_pix_loss: normalise each target patch by its mean/std.
        epochs: training epochs.
        batch_size: batch size.
        lr: absolute learning rate (overrides blr).
        blr: base learning rate, ``lr = blr × batch / 256``.
        weight_decay: AdamW weight decay (not on biases/norms).
        betas: AdamW betas.
        warmup_epochs: linear warm-up epochs.
        epoch_size: images per epoch (None: the whole pool).
        augment: ``rrc`` (RandomResizedCrop 0.2–1 + flip), ``shift`` (±1 px) or ``none``.
        seed: seed of data order, masking and initialisation.
    """

    dataset: str = "embedded"
    root: str | None = None
    arch: str = "default_teacher"
    img_size: int | None = None
    patch_size: int | None = None
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    epochs: int = 30
    batch_size: int = 128
    lr: float | None = 1.5e-3
    blr: float = 1.5e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_epochs: float = 2.0
    epoch_size: int | None = 5000
    augment: str = "rrc"
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def vit_config(self) -> ViTConfig:
        if self.arch not in ARCHS:
            raise ConfigError(f"pretrain arch {self.arch!r} unknown (expected one of {', '.join(ARCHS)})")
        fields = {k: v for k, v in ARCHS[self.arch].items() if k != "last_heads"}
        size, patch = dataset_geometry(self.dataset)
        fields["img_size"] = self.img_size or (size if self.dataset != "imagefolder" else fields["img_size"])
        fields["patch_size"] = self.patch_size or (
            patch if self.dataset != "imagefolder" else fields["patch_size"]
        )
        return ViTConfig(**fields)

    def cache_key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_preset(name: str) -> PretrainConfig:
    """A ``PretrainConfig`` from a shipped preset (``configs/<name>.yaml``) or a YAML file."""
    import yaml

    from paperlab_core.cli import resolve_config

    path = resolve_config(name, "tinymim")
    data = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(data) - set(PretrainConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"{path}: unknown pre-training field(s) {sorted(unknown)}")
    if "betas" in data:
        data["betas"] = tuple(data["betas"])
    return PretrainConfig(**data)


class MAEPretrain(LightningModule):
    """MAE pre-training (He et al. 2022) as a LightningModule: AMP/bf16 through Lightning's precision, DDP,
    checkpoints and resume through the Trainer. One optimiser step per batch; the learning rate follows the
    recipe's per-iteration warm-up + half-cosine (as the hand-written MAE loop did)."""

    def __init__(self, recipe: dict[str, Any]) -> None:
        """
        Args:
            recipe: the fields of a :class:`PretrainConfig` (stored in the checkpoint's hyper-parameters).
        """
        super().__init__()
        self.save_hyperparameters()
        recipe = dict(recipe)
        if "betas" in recipe:
            recipe["betas"] = tuple(recipe["betas"])
        self.recipe = PretrainConfig(**recipe)
        self.vit_config = self.recipe.vit_config()
        self.model = MaskedAutoencoder(
            self.vit_config,
            decoder_dim=self.recipe.decoder_dim,
            decoder_depth=self.recipe.decoder_depth,
            decoder_heads=self.recipe.decoder_heads,
            mask_ratio=self.recipe.mask_ratio,
            norm_pix_loss=self.recipe.norm_pix_loss,
        )
        self.epoch_losses: list[float] = []
        self._running: list[torch.Tensor] = []

    def on_train_start(self) -> None:
        if self.trainer.world_size > 1:  # ranks draw different masks (the data already differs per rank)
            torch.manual_seed(self.recipe.seed * 1000 + self.global_rank)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(batch["teacher"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"MAE loss is {loss.item()} at step {self.global_step}")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        self._running.append(loss.detach())
        return loss

    def on_train_epoch_end(self) -> None:
        self._flush()

    def on_train_end(self) -> None:
        self._flush()  # a --max-steps stop inside an epoch

    def _flush(self) -> None:
        if not self._running:
            return
        mean = torch.stack(self._running).float().mean()
        self._running = []
        mean = self.trainer.strategy.reduce(mean, reduce_op="mean")
        self.epoch_losses.append(float(mean))

    def configure_optimizers(self) -> Any:
        cfg = self.recipe
        groups = param_groups(self.model.named_parameters(), cfg.weight_decay)
        for group in groups:
            group.pop("names", None)
        base_lr = effective_lr(cfg.lr, cfg.blr, cfg.batch_size * max(1, self.trainer.world_size))
        optimizer = torch.optim.AdamW(groups, lr=base_lr, betas=tuple(cfg.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = cfg.warmup_epochs * total / max(1, self.trainer.max_epochs or cfg.epochs)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: cosine_lr(step, total, warmup, 1.0)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["tinymim_mae"] = {"epoch_losses": list(self.epoch_losses)}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.epoch_losses = list(checkpoint.get("tinymim_mae", {}).get("epoch_losses", []))


class StepProgress(Callback):
    """Progress of a pre-training run on stderr when no progress bar is shown (logs, cluster jobs, the builtin
    teacher built inside ``tinymim train``): ``step i/total (p%), elapsed, ETA, loss`` every ``every_s``
    seconds."""

    def __init__(self, description: str, every_s: float = 10.0) -> None:
        self.description = description
        self.every_s = every_s
        self._start = self._last = 0.0

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start = self._last = time.monotonic()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s or not trainer.is_global_zero:
            return
        self._last = now
        done, total = trainer.global_step, max(1, int(trainer.estimated_stepping_batches))
        elapsed = now - self._start
        eta = elapsed / max(1, done) * max(0, total - done)
        loss = trainer.callback_metrics.get("train/loss")
        loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
        log(
            f"{self.description}: step {done}/{total} ({100 * done / total:.0f}%), {elapsed:.0f} s, "
            f"ETA {eta:.0f} s{loss_text}"
        )


def pretrain_mae(
    config: PretrainConfig,
    out: str | Path,
    device: str | None = None,
    max_steps: int | None = None,
    *,
    devices: int | str = 1,
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    nested: bool = False,
) -> dict[str, Any] | None:
    """Train an MAE with Lightning and write a tinymim checkpoint (encoder, ``meta.block_heads``, the decoder in
    ``meta.decoder``) to ``out`` (rank 0).

    Args:
        config: the recipe.
        out: checkpoint path (written atomically by rank 0).
        device: accelerator (``cpu``/``cuda``/...; default: cuda when available).
        max_steps: stop after this many optimiser steps (smoke runs).
        devices, num_nodes, strategy: Lightning's (``devices=2, strategy="ddp"`` for DDP).
        precision: Lightning precision (default: ``bf16-mixed`` on bf16 CUDA, else ``32-true``).
        run_dir: when set, Lightning checkpoints go to ``<run_dir>/checkpoints/`` (``last.ckpt`` every epoch).
        resume: a ``last.ckpt`` to continue from (model, optimiser, schedule, epoch, loss curve).
        nested: a single-process run inside another (possibly distributed) job, e.g. the builtin teacher built by
            rank 0 of ``tinymim train``: the cluster environment is not consulted.

    Returns the summary (per-epoch mean losses, wall-clock) on rank 0, None on the other ranks.
    """
    from pytorch_lightning import Trainer
    from pytorch_lightning.callbacks import ModelCheckpoint

    from paperlab_core.lightning import AtomicCheckpointIO
    from paperlab_core.logging import progress_bar_callback
    from paperlab_core.runtime import select_precision

    accelerator = device or ("cuda" if torch.cuda.is_available() else "cpu")
    seed_everything(config.seed)
    vit_config = config.vit_config()
    size, _ = dataset_geometry(config.dataset)
    data = TinyMIMDataModule(
        dataset=config.dataset,
        root=config.root,
        mode="distill",
        batch_size=config.batch_size,
        img_size=vit_config.img_size,
        epoch_size=config.epoch_size,
        augment=config.augment,
        student_color_jitter=False,
        seed=config.seed,
    )
    module = MAEPretrain(asdict(config))
    description = f"MAE pre-training ({config.arch} on {config.dataset}, {config.epochs} epochs)"
    tty = sys.stderr.isatty() and not nested
    callbacks: list[Any] = [progress_bar_callback()] if tty else [StepProgress(description)]
    plugins: list[Any] = [AtomicCheckpointIO()]
    if nested:
        from lightning_fabric.plugins.environments import LightningEnvironment

        plugins.append(LightningEnvironment())
    if run_dir is not None:
        callbacks.append(ModelCheckpoint(dirpath=Path(run_dir) / "checkpoints", save_last=True, save_top_k=0))
    trainer = Trainer(
        max_epochs=config.epochs,
        max_steps=max_steps if max_steps is not None else -1,
        accelerator=accelerator,
        devices=devices if not nested else 1,
        num_nodes=num_nodes if not nested else 1,
        strategy=strategy if not nested else "auto",
        precision=precision or select_precision(accelerator),  # type: ignore[arg-type]
        plugins=plugins,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=run_dir is not None,
        enable_progress_bar=tty,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=str(run_dir) if run_dir is not None else None,
    )
    start = time.time()
    trainer.fit(module, datamodule=data, ckpt_path=str(resume) if resume else None)
    if not trainer.is_global_zero:
        return None
    elapsed = time.time() - start
    epoch_losses = module.epoch_losses
    summary = {
        "epoch_losses": epoch_losses,
        "seconds": elapsed,
        "steps": trainer.global_step,
        "config": asdict(config),
        "image_size": size,
        "world_size": trainer.world_size,
        "precision": str(trainer.precision),
    }
    model = module.model
    meta = {
        "source": f"tinymim pretrain-teacher ({config.arch} on {config.dataset})",
        "pretrain": summary,
        "decoder": {
            k: v.detach().float().cpu() for k, v in model.state_dict().items() if not k.startswith("encoder.")
        },
    }
    save_tinymim_checkpoint(out, model.encoder.float(), vit_config, meta)
    log(
        f"tinymim: MAE pre-training finished in {elapsed:.0f} s; loss {epoch_losses[0]:.3f} → {epoch_losses[-1]:.3f}"
    )
    return summary


def distributed_rank() -> tuple[int, int]:
    """(global rank, world size) of this process: from torch.distributed when initialised, else from the launcher's
    environment (``RANK``/``LOCAL_RANK``/``SLURM_PROCID`` with ``WORLD_SIZE``); (0, 1) for a plain process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    env = os.environ
    world = int(env.get("WORLD_SIZE") or 1)
    rank = int(env.get("RANK") or env.get("SLURM_PROCID") or env.get("LOCAL_RANK") or 0) if world > 1 else 0
    return rank, world


#: how long ranks other than 0 wait for rank 0 to build a missing builtin teacher (seconds)
WAIT_ENV = "TINYMIM_TEACHER_WAIT_S"


def wait_for_file(path: Path, what: str, timeout_s: float | None = None, poll_s: float = 2.0) -> Path:
    """Block until ``path`` exists (rank 0 writes it atomically), logging every minute; a one-line error after
    ``timeout_s`` (default ``$TINYMIM_TEACHER_WAIT_S`` or 24 h)."""
    timeout = float(os.environ.get(WAIT_ENV, 86400)) if timeout_s is None else timeout_s
    start = last = time.monotonic()
    while not path.is_file():
        now = time.monotonic()
        if now - start > timeout:
            raise UserError(
                f"waited {timeout:.0f} s for rank 0 to write {what} {path} (is the cache folder shared by every "
                f"node? set {WAIT_ENV} to wait longer, or run `tinymim pretrain-teacher` first)"
            )
        if now - last >= 60:
            last = now
            log(f"tinymim: waiting for rank 0 to build {what} {path} ({now - start:.0f} s)")
        time.sleep(poll_s)
    return path


def teacher_cache_dir() -> Path:
    return cache_root() / "tinymim" / "teachers"


def builtin_cache_path(preset: str, config: PretrainConfig) -> Path:
    """Where the builtin teacher of ``preset`` (trained with ``config``) is cached."""
    return teacher_cache_dir() / f"{preset}-{config.cache_key()}.pth"


SHIPPED_SUMS = "SHA256SUMS.json"


def shipped_dir() -> Path:
    """The package-data folder of shipped teachers."""
    from importlib.resources import files

    return Path(str(files("tinymim") / "teachers"))


def shipped_teacher(preset: str, config: PretrainConfig) -> Path | None:
    """The teacher shipped as package data (``tinymim/teachers/<preset>-<recipe hash>.pth``), checked against
    ``SHA256SUMS.json``; None when the package ships none for this recipe."""
    from tinymim.teacher import file_sha256

    folder = shipped_dir()
    path = folder / f"{preset}-{config.cache_key()}.pth"
    if not path.is_file():
        return None
    sums = folder / SHIPPED_SUMS
    expected = json.loads(sums.read_text()).get(path.name) if sums.is_file() else None
    if expected is None or file_sha256(path) != expected:
        raise UserError(
            f"shipped teacher {path} does not match its checksum in {sums.name} (reinstall tinymim, or rebuild it "
            f"with `tinymim pretrain-teacher --config {preset}`)"
        )
    return path


def builtin_teacher_path(preset: str = "mae-teacher-default", allow_pretrain: bool = True) -> Path:
    """Path of the builtin teacher for ``preset``: the user's cache (``pretrain-teacher`` installs there), else the
    copy shipped with the package, else it is pre-trained now into the cache (with a progress bar)."""
    config = load_preset(preset)
    path = builtin_cache_path(preset, config)
    if path.is_file():
        return path
    shipped = shipped_teacher(preset, config)
    if shipped is not None:
        return shipped
    if not allow_pretrain:
        raise FileNotFoundError(f"builtin teacher {path} is not cached (run `tinymim pretrain-teacher`)")
    log(
        f"tinymim: the builtin teacher ({preset}) is not cached yet; pre-training it now with MAE "
        f"({config.epochs} epochs, once per machine) into {path}"
    )
    rank, world = distributed_rank()
    if rank != 0:
        log(f"tinymim: rank {rank} of {world} waits for rank 0 to build the builtin teacher {path}")
        return wait_for_file(path, "the builtin teacher")
    summary = pretrain_mae(config, path, nested=True)
    assert summary is not None
    write_json_atomic(path.with_suffix(".json"), summary)
    return path


RECIPE_FILE = "teacher-recipe.json"


def pretrain_teacher(args: Any, run: Any) -> dict[str, Any]:
    """``tinymim pretrain-teacher``: MAE pre-training into ``<run folder>/teacher.pth`` (+ ``teacher.json``).

    A Lightning run: ``--devices/--num-nodes/--strategy`` for DDP (every rank writes into rank 0's run folder),
    ``--precision bf16-mixed|16-mixed`` for AMP, ``checkpoints/last.ckpt`` every epoch and ``--resume RUN_DIR`` to
    continue it (the recipe stored in the folder is used). A full run of a shipped recipe without overrides is also
    installed as that builtin teacher, which is what ``tinymim train`` (``--model.teacher.source builtin[:PRESET]``)
    loads.
    """
    import shutil

    folder = Path(run.dir)
    resume = getattr(args, "resume", None)
    if resume is not None:
        stored = folder / RECIPE_FILE
        last = folder / "checkpoints" / "last.ckpt"
        for path, what in ((stored, "recipe"), (last, "checkpoint")):
            if not path.is_file():
                raise UserError(
                    f"--resume {folder}: no {what} {path.name} (expected a folder written by "
                    f"`tinymim pretrain-teacher`)"
                )
        data = json.loads(stored.read_text(encoding="utf-8"))
        data["betas"] = tuple(data["betas"])
        config = PretrainConfig(**data)
        log(
            f"tinymim pretrain-teacher: resuming {last} (recipe from {stored}; command-line overrides ignored)"
        )
    else:
        config = load_preset(args.config)
        arch = {"teacher": "default_teacher", "student": "default_student"}.get(args.arch or "", args.arch)
        overrides = {
            "arch": arch,
            "epochs": args.epochs,
            "dataset": args.data_dataset,
            "root": str(args.data_root) if args.data_root else None,
            "seed": args.seed,
        }
        for name, value in overrides.items():
            if value is not None:
                setattr(config, name, value)
    config.vit_config()  # an unknown architecture fails here, before any work
    if getattr(args, "print_config", False):
        print(json.dumps(asdict(config), indent=2, default=str))
        return {}
    rank, _ = distributed_rank()
    if rank == 0:
        log(f"tinymim pretrain-teacher: recipe {json.dumps(asdict(config), default=str)}")
        write_json_atomic(folder / RECIPE_FILE, asdict(config))
    devices = args.devices if args.devices is not None else 1
    if devices != 1 or args.num_nodes != 1:
        # Lightning starts the other local ranks by re-running this command: they must join this run folder
        if "--out" not in sys.argv and not any(a.startswith("--out=") for a in sys.argv):
            sys.argv += ["--out", str(folder)]
    out = folder / "teacher.pth"
    summary = pretrain_mae(
        config,
        out,
        device=run.accelerator,
        max_steps=args.max_steps,
        devices=devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=args.precision,
        run_dir=folder,
        resume=folder / "checkpoints" / "last.ckpt" if resume is not None else None,
    )
    if summary is None:  # not rank 0: rank 0 writes the outputs
        return {}
    run.write_json("teacher.json", summary)
    result: dict[str, Any] = {"teacher_checkpoint": str(out), "loss_first_epoch": summary["epoch_losses"][0],
                              "loss_last_epoch": summary["epoch_losses"][-1], "seconds": summary["seconds"],
                              "world_size": summary["world_size"], "steps": summary["steps"]}  # fmt: skip
    preset = Path(args.config).stem
    shipped = not Path(args.config).is_file() and preset in _shipped_recipes()
    if shipped and args.max_steps is None and config.cache_key() == load_preset(preset).cache_key():
        cached = builtin_cache_path(preset, config)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(".pth.part")
        shutil.copyfile(out, partial)
        partial.replace(cached)
        write_json_atomic(cached.with_suffix(".json"), summary)
        result["builtin_teacher"] = str(cached)
        log(f"tinymim: installed as the builtin teacher {cached} (`tinymim train` uses it)")
    print(f"teacher checkpoint: {out}")
    print(f"use it with: tinymim train --model.teacher.source tinymim:{out}")
    return result


def _shipped_recipes() -> set[str]:
    from paperlab_core.cli import list_presets

    return {name for name in list_presets("tinymim") if name.startswith("mae-")}
