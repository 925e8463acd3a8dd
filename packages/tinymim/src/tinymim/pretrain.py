"""In-package MAE pre-training (``tinymim pretrain-teacher``) and the cache of builtin teachers."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from paperlab_core.data import cache_root
from paperlab_core.errors import ConfigError, UserError
from paperlab_core.logging import log, track, write_json_atomic
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


def pretrain_mae(
    config: PretrainConfig, out: str | Path, device: str | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Train an MAE and write a tinymim checkpoint (encoder + decoder, ``meta.block_heads``) to ``out``.

    Returns a summary with the per-epoch mean losses and the wall-clock time.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
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
    model = MaskedAutoencoder(
        vit_config,
        decoder_dim=config.decoder_dim,
        decoder_depth=config.decoder_depth,
        decoder_heads=config.decoder_heads,
        mask_ratio=config.mask_ratio,
        norm_pix_loss=config.norm_pix_loss,
    ).to(device)
    groups = param_groups(model.named_parameters(), config.weight_decay)
    base_lr = effective_lr(config.lr, config.blr, config.batch_size)
    optimizer = torch.optim.AdamW(groups, lr=base_lr, betas=config.betas)
    loader = data.train_dataloader()
    steps_per_epoch = len(loader)
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    epoch_losses: list[float] = []
    start = time.time()
    step = 0
    for epoch in track(range(config.epochs), f"MAE pre-training ({config.arch} on {config.dataset})"):
        model.train()
        losses = []
        for batch in loader:
            lr = cosine_lr(step, total, warmup, base_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            images = data.distill_views(batch[0].to(device))["teacher"]
            loss = model(images)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"MAE loss is {loss.item()} at epoch {epoch}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        epoch_losses.append(sum(losses) / max(1, len(losses)))
        if max_steps is not None and step >= max_steps:
            break
    elapsed = time.time() - start
    summary = {
        "epoch_losses": epoch_losses,
        "seconds": elapsed,
        "steps": step,
        "config": asdict(config),
        "image_size": size,
    }
    meta = {
        "source": f"tinymim pretrain-teacher ({config.arch} on {config.dataset})",
        "pretrain": summary,
        "decoder": {
            k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("encoder.")
        },
    }
    save_tinymim_checkpoint(out, model.encoder, vit_config, meta)
    log(
        f"tinymim: MAE pre-training finished in {elapsed:.0f} s; loss {epoch_losses[0]:.3f} → {epoch_losses[-1]:.3f}"
    )
    return summary


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
    summary = pretrain_mae(config, path)
    write_json_atomic(path.with_suffix(".json"), summary)
    return path


def pretrain_teacher(args: Any, run: Any) -> dict[str, Any]:
    """``tinymim pretrain-teacher``: MAE pre-training into ``<run folder>/teacher.pth`` (+ ``teacher.json``).

    A full run of a shipped recipe without overrides is also installed as that builtin teacher, which is what
    ``tinymim train`` (``--model.teacher.source builtin[:PRESET]``) loads.
    """
    import shutil

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
    log(f"tinymim pretrain-teacher: recipe {json.dumps(asdict(config), default=str)}")
    out = run.path("teacher.pth")
    summary = pretrain_mae(config, out, device=str(run.device), max_steps=args.max_steps)
    run.write_json("teacher.json", summary)
    result: dict[str, Any] = {"teacher_checkpoint": str(out), "loss_first_epoch": summary["epoch_losses"][0],
                              "loss_last_epoch": summary["epoch_losses"][-1], "seconds": summary["seconds"]}  # fmt: skip
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
