"""Command line: ``tinymim train [--chain ...] | finetune | evaluate | pretrain-teacher | export | reproduce | bench``.

Declarations only: nothing here imports torch, Lightning or a heavy tinymim module, so ``--help``, ``--version``
and ``VERB --help`` answer at once. Option choices are literal tuples; ``tests/test_tinymim_cli.py`` checks that
they equal the registries they mirror (``tinymim.data.DatasetName``, ``tinymim.models.ARCHS``, ...).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from paperlab_core.cli import LightningVerb, build_cli
from paperlab_core.errors import guarded
from paperlab_core.verbs import (
    CKPT,
    DATA_ROOT,
    DEVICE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    THREADS,
    Verb,
    comma_list,
    non_negative_int,
    option,
    positive_int,
)

#: ``tinymim.data.DatasetName``
DATASETS = (
    "embedded",
    "digits32",
    "digits17",
    "digits65",
    "cifar10-subset",
    "cifar10",
    "cifar100",
    "mnist",
    "imagefolder",
)
#: ``tinymim.reproduce.DATASETS`` and ``tinymim.reproduce.VARIANTS``
REPRODUCE_DATASETS = ("cifar10-subset", "digits17", "digits65")
REPRODUCE_VARIANTS = ("scratch", "mae", "cls", "feature", "relation")
#: ``tinymim.models.ARCHS`` (plus the aliases ``teacher`` and ``student``)
ARCHS = (
    "vit_tiny_patch16",
    "vit_small_patch16",
    "vit_base_patch16",
    "mae_vit_small",
    "mae_vit_base",
    "mae_vit_large",
    "mae_vit_huge",
    "default_teacher",
    "default_student",
)
#: ``tinymim.bench.PRESETS``
BENCH_PRESETS = ("default", "paper-b-from-l")

TRAIN = LightningVerb(
    "train",
    "relation distillation (Lightning fit); no arguments runs the embedded default; "
    "--chain L-B-S|B-S-T|A,B,... runs sequential distillation",
)
EVALUATE = LightningVerb(
    "evaluate",
    "test a checkpoint (--ckpt PATH, its config is restored): k-NN top-1 of a distilled student, "
    "top-1/top-5 of a fine-tuned one",
    stages=("test",),
    base_preset="evaluate",
    needs_ckpt=True,
    restores_config=True,
)
FINETUNE = LightningVerb(
    "finetune",
    "supervised fine-tuning of a distilled/MAE student (--ckpt PATH, or none for scratch), tested at the end",
    stages=("fit", "test"),
    model="tinymim.module:TinyMIMFinetune",
    base_preset="finetune-default",
    renames={"--ckpt": "--model.init"},
)

PRETRAIN_TEACHER = Verb(
    "pretrain-teacher",
    "tinymim.pretrain:pretrain_teacher",
    "MAE pre-training of the in-package teacher (or of a student for the `mae` variant), offline",
    (
        option("--config", default="mae-teacher-default", metavar="PRESET|FILE",
               help="pre-training recipe: a preset (mae-teacher-default, mae-vit-small, mae-vit-tiny) or a YAML "
                    "file (default mae-teacher-default)"),
        option("--arch", default=None, choices=("teacher", "student", *ARCHS),
               help="encoder architecture (default: the recipe's; teacher = default_teacher, "
                    "student = default_student)"),
        option("--epochs", type=positive_int, default=None, metavar="N", help="override the recipe's epochs"),
        option("--max-steps", type=positive_int, default=None, metavar="N",
               help="stop after N optimiser steps (smoke runs)"),
        option("--data.dataset", default=None, choices=DATASETS, help="override the recipe's dataset"),
        DATA_ROOT,
        SEED.but(default=None, help="override the recipe's seed"),
        option("--print_config", flag=True, help="print the resolved recipe and exit"),
        option("--devices", type=positive_int, default=None, metavar="N",
               help="devices (processes) per node for DDP (default 1)"),
        option("--num-nodes", type=positive_int, default=1, metavar="N", help="nodes (default 1)"),
        option("--strategy", default="auto", metavar="NAME",
               help="Lightning strategy (default auto: ddp when --devices > 1)"),
        option("--precision", default=None, metavar="P",
               help="Lightning precision: 32-true, bf16-mixed, 16-mixed (fp16 AMP with a GradScaler); default "
                    "bf16-mixed on bf16 CUDA, else 32-true"),
        option("--resume", default=None, metavar="RUN_DIR",
               help="continue a pre-training run from RUN_DIR/checkpoints/last.ckpt with the recipe stored there"),
        OUT,
        THREADS,
        DEVICE,
    ),
    epilog="The checkpoint is <run folder>/teacher.pth (Lightning checkpoints in <run folder>/checkpoints/); the "
    "default recipe is also installed as the builtin teacher (~/.cache/paperlab/tinymim/teachers/) that "
    "`tinymim train` uses.",
)  # fmt: skip
EXPORT = Verb(
    "export",
    "tinymim.commands:export",
    "write a distilled student as a timm-loadable checkpoint (<out>/student_timm.pth)",
    (
        CKPT.but(help="a `tinymim train` checkpoint (.ckpt) or a student .pth"),
        option("--pool", default="avg", choices=("avg", "token"),
               help="avg: global average pooling + fc_norm (final norm dropped); token: CLS token"),
        OUT,
    ),
    uses_torch=True,
)  # fmt: skip
REPRODUCE = Verb(
    "reproduce",
    "tinymim.reproduce:reproduce",
    "the small-scale Table 8 experiment: MAE teacher, five student variants, identical fine-tuning",
    (
        *REPRODUCE_OPTIONS,
        option("--datasets", type=comma_list(REPRODUCE_DATASETS), default=None, metavar="LIST",
               help=f"comma list of {', '.join(REPRODUCE_DATASETS)} (default: all three; --quick: digits17)"),
        option("--variants", type=comma_list(REPRODUCE_VARIANTS), default=None, metavar="LIST",
               help=f"comma list of {', '.join(REPRODUCE_VARIANTS)} (default: all)"),
        option("--teacher-epochs", type=positive_int, default=None, metavar="N",
               help="teacher MAE epochs (default 100, --quick 10)"),
        option("--student-epochs", type=positive_int, default=None, metavar="N",
               help="student pre-training/distillation epochs (default 60, --quick 10)"),
        option("--finetune-epochs", type=positive_int, default=None, metavar="N",
               help="override every fine-tuning budget (default 100 low-label / 40 all labels / 100 cifar)"),
        option("--label-seed", type=non_negative_int, default=None, metavar="N",
               help="seed of the low-label fine-tuning subset (default: each cell's seed, so seeds vary it)"),
        option("--teacher-per-seed", flag=True,
               help="pre-train one MAE teacher per seed (default: one seed-0 teacher shared by every seed)"),
        DATA_ROOT.but(help="folder of the cifar10-subset JPEGs (default: ../shared/data/images/cifar10_test_jpg)"),
    ),
    description="The small-scale Table 8 experiment (spec §5). Per dataset a teacher ViT(64, 6 blocks) is "
    "MAE-pre-trained once (cached in the output folder); every cell (dataset × variant × seed) obtains a "
    "student ViT(32, 4 blocks) -- scratch, MAE on the student, CLS KD, feature KD, relation KD -- and fine-tunes "
    "it identically; the table reports the final-epoch test top-1 (mean ± std over seeds).",
)  # fmt: skip
BENCH = Verb(
    "bench",
    "",
    "performance measurements (bench distill)",
    subverbs=(
        Verb(
            "distill",
            "tinymim.bench:bench_distill",
            "fast truncated distillation step vs the full-forward reference; writes bench.json",
            (
                option("--preset", default="default", choices=BENCH_PRESETS, help="model pair (default default)"),
                option("--random-weights", flag=True, help="random teacher (no cached builtin teacher needed)"),
                option("--batch-size", type=positive_int, default=None, metavar="B",
                       help="batch size (default: the preset's)"),
                option("--steps", type=positive_int, default=20, metavar="N", help="timed steps (default 20)"),
                option("--warmup", type=non_negative_int, default=3, metavar="N", help="untimed steps (default 3)"),
                option("--precision", default="32-true", choices=("32-true", "bf16-mixed"),
                       help="autocast precision (default 32-true)"),
                THREADS.but(default=2, help="CPU threads (default 2, the spec's gate setting)"),
                DEVICE,
                OUT,
            ),
        ),
    ),
)  # fmt: skip

_main = build_cli(
    "tinymim",
    model="tinymim.module:TinyMIMDistill",
    data="tinymim.data:TinyMIMDataModule",
    description="TinyMIM (CVPR 2023): distil MIM-pre-trained ViTs into small ViTs with relation distillation.",
    verbs=[TRAIN, FINETUNE, EVALUATE, PRETRAIN_TEACHER, EXPORT, REPRODUCE, BENCH],
)


def main(argv: Sequence[str] | None = None) -> int:
    """``tinymim`` entry point: the paperlab CLI, plus ``train --chain`` (sequential distillation, ``chain.py``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["train"] and any(a == "--chain" or a.startswith("--chain=") for a in args[1:]):
        from tinymim.chain import run_chain, split_chain_args

        def chain() -> int:
            value, rest = split_chain_args(args[1:])
            return run_chain(lambda step: _main(["train", *step]), value, rest)

        return guarded("tinymim", chain, args)
    if args[:1] == ["pretrain-teacher"]:
        resolved = _resume_into_out(args)
        if resolved is None:
            print("tinymim: error: --resume RUN_DIR continues in RUN_DIR (omit --out, or give the same folder)",
                  file=sys.stderr)  # fmt: skip
            return 2
        args = resolved
    return _main(args)


def _resume_into_out(args: list[str]) -> list[str] | None:
    """``pretrain-teacher --resume RUN_DIR`` continues in RUN_DIR: it becomes ``--out`` (a different ``--out`` is an
    error: None)."""
    value = next((a.split("=", 1)[1] for a in args if a.startswith("--resume=")), None)
    if value is None and "--resume" in args[:-1]:
        value = args[args.index("--resume") + 1]
    if value is None:
        return args
    out = next((a.split("=", 1)[1] for a in args if a.startswith("--out=")), None)
    if out is None and "--out" in args[:-1]:
        out = args[args.index("--out") + 1]
    if out is None:
        return [*args, "--out", value]
    return args if Path(out) == Path(value) else None


main.spec = _main.spec  # type: ignore[attr-defined]

if __name__ == "__main__":
    raise SystemExit(main())
