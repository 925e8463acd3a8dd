"""``tinymim reproduce``: the small-scale Table 8 experiment (spec §5) as a grid of cells.

Per dataset a teacher ViT(64, 6 blocks, 4 heads) is MAE-pre-trained (seed 0; cached under ``<out>/teachers/`` and
shared by every cell of that dataset, so an interrupted run or a shard reuses it). Every cell (dataset × variant
× seed) obtains a student ViT(32, 4 blocks, 2 heads) — scratch, MAE on the student, CLS KD, feature KD, relation
KD (target block 5 = ⌈0.75·6⌉) — and fine-tunes it identically in every label regime of the dataset; the table
reports the final-epoch test top-1 (no best-epoch selection), mean ± std over seeds.

Runs whole, as ``--shard K/N`` slices, or ``--merge``s shard records (:mod:`paperlab_core.experiment`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytorch_lightning import Trainer

from paperlab_core.experiment import Cell, Record, run_experiment
from paperlab_core.logging import log, write_json_atomic
from paperlab_core.results import Table
from paperlab_core.runtime import seed_everything, select_precision
from paperlab_core.verbs import Run
from tinymim.data import TinyMIMDataModule, dataset_geometry
from tinymim.models import ViTConfig
from tinymim.module import TinyMIMDistill, TinyMIMFinetune
from tinymim.pretrain import PretrainConfig, pretrain_mae
from tinymim.teacher import TeacherConfig, save_tinymim_checkpoint

DATASETS = ("cifar10-subset", "digits17", "digits65")
VARIANTS = ("scratch", "mae", "cls", "feature", "relation")
VARIANT_TARGET = {"cls": "cls", "feature": "feature", "relation": "relation_qk_vv"}
PAPER_TABLE8 = """Paper, Table 8 (ImageNet-1K top-1 %, 300-epoch pre-training), for reference:

| student | DeiT scratch | MAE | CLS distill | feature distill | relation distill |
|---|---|---|---|---|---|
| ViT-T | 72.2 | 71.6 | 70.6 | 73.4 | **75.8** (+4.2) |
| ViT-S | 79.9 | 80.6 | 79.6 | 80.8 | **83.0** (printed "+3.1") |
| ViT-B | 81.2 | 83.6 | 82.6 | 83.8 | **85.0** (printed "+1.6") |"""


@dataclass
class Protocol:
    """Epoch budgets of one run (full protocol of spec §5.1, or ``--quick``)."""

    teacher_epochs: int = 100
    student_epochs: int = 60
    finetune_low_epochs: int = 100
    finetune_full_epochs: int = 40
    finetune_cifar_epochs: int = 100
    labels_per_class: int = 20
    #: seed of the low-label subset; None: the cell's seed (each seed fine-tunes on its own subset)
    label_seed: int | None = None
    #: one MAE teacher per seed (seed s) instead of one seed-0 teacher shared by every seed
    teacher_per_seed: bool = False


QUICK = Protocol(
    teacher_epochs=10,
    student_epochs=10,
    finetune_low_epochs=10,
    finetune_full_epochs=5,
    finetune_cifar_epochs=10,
)


def protocol_from_args(args: argparse.Namespace) -> Protocol:
    protocol = Protocol(**asdict(QUICK if args.quick else Protocol()))
    if args.teacher_epochs:
        protocol.teacher_epochs = args.teacher_epochs
    if args.student_epochs:
        protocol.student_epochs = args.student_epochs
    if getattr(args, "label_seed", None) is not None:
        protocol.label_seed = args.label_seed
    protocol.teacher_per_seed = bool(getattr(args, "teacher_per_seed", False))
    if args.finetune_epochs:
        protocol.finetune_low_epochs = protocol.finetune_full_epochs = protocol.finetune_cifar_epochs = (
            args.finetune_epochs
        )
    return protocol


# --------------------------------------------------------------------------------------------- stages
def _augment(dataset: str) -> str:
    return "shift" if dataset == "digits17" else "rrc"


def _student_config(dataset: str, last_heads: int | None = 4) -> ViTConfig:
    size, patch = dataset_geometry(dataset)
    return ViTConfig(
        img_size=size, patch_size=patch, embed_dim=32, depth=4, num_heads=2, last_heads=last_heads
    )


def _trainer(epochs: int, root: Path, accelerator: str) -> Trainer:
    return Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        precision=select_precision(accelerator),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
    )


def _check_falls(losses: list[float], what: str) -> None:
    """Sanity check of every pre-training stage: the last epoch's loss is below the first (≥ 2 epochs)."""
    if len(losses) >= 2 and losses[-1] >= losses[0]:
        raise RuntimeError(f"{what}: pre-training loss did not fall: {losses}")


def pretrain_stage(
    dataset: str, arch: str, epochs: int, seed: int, out: Path, root: str | None, accelerator: str
) -> dict[str, Any]:
    config = PretrainConfig(
        dataset=dataset,
        root=root,
        arch=arch,
        epochs=epochs,
        batch_size=128,
        lr=1.5e-3,
        warmup_epochs=max(1, epochs // 20),
        epoch_size=None,
        augment=_augment(dataset),
        seed=seed,
    )
    return pretrain_mae(config, out, device=accelerator)


def teacher_stage(
    dataset: str, epochs: int, folder: Path, root: str | None, accelerator: str, seed: int = 0
) -> dict:
    """The dataset's MAE teacher (seed 0, or the cell's seed with ``--teacher-per-seed``), trained once per output
    folder and reused by every cell that names it."""
    path = (
        folder
        / "teachers"
        / (f"{dataset}-e{epochs}.pth" if seed == 0 else f"{dataset}-e{epochs}-seed{seed}.pth")
    )
    summary_path = path.with_suffix(".json")
    if path.is_file() and summary_path.is_file():
        import json

        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    else:
        summary = pretrain_stage(dataset, "default_teacher", epochs, seed, path, root, accelerator)
        _check_falls(summary["epoch_losses"], f"{dataset} teacher")
        write_json_atomic(summary_path, summary)
    return {"path": path, "losses": summary["epoch_losses"], "seconds": summary["seconds"]}


def distill_stage(
    dataset: str,
    variant: str,
    teacher: Path,
    epochs: int,
    seed: int,
    out: Path,
    work: Path,
    root: str | None,
    accelerator: str,
) -> list[float]:
    seed_everything(seed)
    model = TinyMIMDistill(
        student=_student_config(dataset),
        teacher=TeacherConfig(source=f"tinymim:{teacher}"),
        target=VARIANT_TARGET[variant],
        lr=1.5e-3,
        warmup_epochs=max(1, epochs // 20),
    )
    data = TinyMIMDataModule(
        dataset=dataset,
        root=root,
        mode="distill",
        batch_size=128,
        img_size=dataset_geometry(dataset)[0],
        epoch_size=None,
        augment=_augment(dataset),
        seed=seed,
    )
    _trainer(epochs, work, accelerator).fit(model, datamodule=data)
    save_tinymim_checkpoint(out, model.student, model.student_config, model.checkpoint_meta())
    return model._epoch_losses


def finetune_stage(
    dataset: str,
    init: Path | None,
    epochs: int,
    labels_per_class: int | None,
    seed: int,
    work: Path,
    root: str | None,
    accelerator: str,
    label_seed: int = 0,
) -> dict[str, Any]:
    seed_everything(seed)
    model = TinyMIMFinetune(
        init=str(init) if init else None,
        student=_student_config(dataset, None),
        num_classes=10,
        drop_path=0.1,
        lr=2e-3,
        warmup_epochs=max(1, epochs // 20),
        label_smoothing=0.1,
    )
    digits = dataset.startswith("digits")
    data = TinyMIMDataModule(
        dataset=dataset,
        root=root,
        mode="finetune",
        batch_size=128 if labels_per_class is None else 64,
        img_size=dataset_geometry(dataset)[0],
        augment="shift" if digits else "rrc",
        crop_scale=(0.6, 1.0),
        flip=not digits,
        labels_per_class=labels_per_class,
        label_seed=label_seed,
        seed=seed,
    )
    trainer = _trainer(epochs, work, accelerator)
    trainer.fit(model, datamodule=data)
    final_loss = float(trainer.callback_metrics.get("train/loss", float("nan")))
    result = trainer.test(model, datamodule=data, verbose=False)[0]
    return {"acc1": 100.0 * result["test/acc1"], "final_train_loss": final_loss}


def regimes(dataset: str, protocol: Protocol) -> list[tuple[str, int, int | None]]:
    """(label regime, fine-tuning epochs, labels per class) of a dataset."""
    if dataset.startswith("digits"):
        return [
            (
                f"{protocol.labels_per_class} labels/class",
                protocol.finetune_low_epochs,
                protocol.labels_per_class,
            ),
            ("all labels", protocol.finetune_full_epochs, None),
        ]
    return [("all labels", protocol.finetune_cifar_epochs, None)]


def run_cell(cell: Cell, folder: Path, accelerator: str) -> dict[str, Any]:
    """One dataset × variant × seed: the student's pre-training (if any), then fine-tuning in every regime."""
    params = cell.params
    dataset, variant, seed, root = params["dataset"], params["variant"], params["seed"], params["root"]
    protocol = Protocol(**params["protocol"])
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"teacher": None, "pretrain_losses": [], "acc1": {}, "final_train_loss": {}}
    init: Path | None = None
    start = time.perf_counter()
    if variant == "mae":
        init = folder / "students" / f"{dataset}-mae-seed{seed}.pth"
        summary = pretrain_stage(
            dataset, "default_student", protocol.student_epochs, seed, init, root, accelerator
        )
        result["pretrain_losses"] = summary["epoch_losses"]
    elif variant != "scratch":
        teacher_seed = seed if protocol.teacher_per_seed else 0
        teacher = teacher_stage(dataset, protocol.teacher_epochs, folder, root, accelerator, teacher_seed)
        result["teacher"] = {"loss_first": teacher["losses"][0], "loss_last": teacher["losses"][-1]}
        start = time.perf_counter()
        init = folder / "students" / f"{dataset}-{variant}-seed{seed}.pth"
        result["pretrain_losses"] = distill_stage(
            dataset, variant, teacher["path"], protocol.student_epochs, seed, init, work, root, accelerator
        )
    _check_falls(result["pretrain_losses"], f"{dataset} {variant} seed {seed}")
    result["pretrain_s"] = round(time.perf_counter() - start, 3)
    for regime, epochs, per_class in regimes(dataset, protocol):
        label_seed = seed if protocol.label_seed is None else protocol.label_seed
        finetuned = finetune_stage(
            dataset, init, epochs, per_class, seed, work, root, accelerator, label_seed
        )
        result["acc1"][regime] = finetuned["acc1"]
        result["final_train_loss"][regime] = finetuned["final_train_loss"]
        log(
            f"tinymim reproduce: {dataset} | {regime} | {variant} | seed {seed}: top-1 {finetuned['acc1']:.1f}"
        )
    return result


# --------------------------------------------------------------------------------------------- tables
def mean_std(values: list[float]) -> str:
    """``"m"`` for one value, ``"m ± s"`` (sample std) for several, ``"–"`` for none."""
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {statistics.stdev(values):.1f}"


def summarize(records: list[Record]) -> dict[str, Any]:
    """The accuracy table, relation KD's margins and the pre-training losses, from the records alone."""
    order = {name: i for i, name in enumerate(DATASETS)}
    datasets = sorted({r["params"]["dataset"] for r in records}, key=lambda d: order.get(d, len(order)))
    variants = [v for v in VARIANTS if any(r["params"]["variant"] == v for r in records)]
    accuracy = Table(
        ["dataset", "labels", *variants], title="Fine-tuned test top-1 % (final epoch, mean ± std)"
    )
    others = [v for v in variants if v != "relation"]
    margins = Table(
        ["dataset", "labels", *[f"relation − {v}" for v in others], "seeds"],
        formats={f"relation − {v}": "+.1f" for v in others},
        title="Relation KD minus each other variant (points, mean over seeds)",
    )
    losses = Table(
        ["dataset", "stage", "first epoch", "last epoch"],
        formats={"first epoch": ".4f", "last epoch": ".4f"},
        title="Pre-training loss (mean over seeds)",
    )
    for dataset in datasets:
        rows = [r for r in records if r["params"]["dataset"] == dataset]
        regimes_seen = list(dict.fromkeys(k for r in rows for k in r["result"]["acc1"]))
        for regime in regimes_seen:
            accs = {
                v: [r["result"]["acc1"][regime] for r in rows if r["params"]["variant"] == v and regime in r["result"]["acc1"]]
                for v in variants
            }  # fmt: skip
            accuracy.add(dataset, regime, *[mean_std(accs[v]) for v in variants])
            if "relation" in variants and others and accs["relation"]:
                relation = statistics.fmean(accs["relation"])
                gaps = [relation - statistics.fmean(accs[v]) if accs[v] else None for v in others]
                margins.add(dataset, regime, *gaps, len(accs["relation"]))
        teachers = [r["result"]["teacher"] for r in rows if r["result"].get("teacher")]
        if teachers:
            losses.add(dataset, "teacher MAE", teachers[0]["loss_first"], teachers[0]["loss_last"])
        for variant in variants:
            curves = [r["result"]["pretrain_losses"] for r in rows if r["params"]["variant"] == variant]
            curves = [c for c in curves if c]
            if curves:
                first = statistics.fmean(c[0] for c in curves)
                last = statistics.fmean(c[-1] for c in curves)
                losses.add(dataset, variant, first, last)
    tables: dict[str, Any] = {"main": accuracy}
    if margins.rows:
        tables["margins"] = margins
    tables["losses"] = losses
    tables["text"] = PAPER_TABLE8
    return tables


# --------------------------------------------------------------------------------------------- verb
def cells_for(args: argparse.Namespace) -> list[Cell]:
    protocol = protocol_from_args(args)
    datasets = args.datasets or (["digits17"] if args.quick else list(DATASETS))
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    variants = args.variants or list(VARIANTS)
    root = str(args.data_root) if args.data_root else None
    return [
        Cell(
            f"{dataset}/{variant}/seed{seed}",
            {
                "dataset": dataset,
                "variant": variant,
                "seed": seed,
                "protocol": asdict(protocol),
                "root": root if dataset == "cifar10-subset" else None,
            },
        )
        for dataset in datasets
        for seed in seeds
        for variant in variants
    ]


def reproduce(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """The small-scale Table 8 experiment (teacher MAE, five student variants, identical fine-tuning)."""
    from paperlab_core.lightning import quiet_lightning_info

    quiet_lightning_info()
    cells = cells_for(args)
    assert run.dir is not None
    return run_experiment(run, args, cells, lambda cell: run_cell(cell, run.dir, run.accelerator), summarize)
