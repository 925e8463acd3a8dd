"""``bolt`` entry point: declarations only (targets are strings, choices literal tuples), so ``--help``,
``--version`` and ``VERB --help`` never import torch. Proposals of this package are marked "(ours)"."""

from __future__ import annotations

import argparse

from bolt_ssl import __version__
from paperlab_core.cli import TRAIN, LightningVerb, build_cli
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
    positive_int,
)
from paperlab_core.verbs import option as opt

#: ``bolt_ssl.pretrain.METHODS``
METHOD_CHOICES = ("bolt", "token_byol", "byol", "mae")
#: ``bolt_ssl.reproduce.INITS``
INIT_METHODS = ("scratch", "byol", "token_byol", "mae", "bolt")
#: ``bolt_ssl.reproduce.DATASETS``
REPRODUCE_DATASETS = ("retinamnist", "breastmnist", "digits", "synthetic-retina")
#: ``bolt_ssl.bench.BENCH_METHODS``
BENCH_METHODS = ("bolt", "byol", "mae", "supervised", "bolt_shared_detached", "bolt_independent")
SPLIT_CHOICES = ("train", "val", "test")
#: ``bolt_ssl.protocols.PROBE_MODES``
PROBE_MODES = ("spec", "val")
#: ``bolt_ssl.models.PROBE_FEATURES``
PROBE_FEATURES = ("readout", "mean", "cls+mean", "last4")
#: ``bolt_ssl.reproduce.BRANCHES``
BRANCHES = ("online", "target")


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def _fractions(text: str) -> list[float]:
    return [_fraction(part) for part in comma_list()(text)]


DATA_OPTIONS = (
    opt(
        "--data.name",
        default=None,
        metavar="NAME",
        help="synthetic-retina (ours, embedded) | digits | retinamnist | breastmnist | medmnist:<flag> | folder | csv",
    ),
    opt(
        "--data.size",
        type=positive_int,
        default=None,
        metavar="PX",
        help="image size (MedMNIST: 28, 64, 128, 224)",
    ),
    DATA_ROOT,
    opt(
        "--data.file",
        default=None,
        metavar="PATH",
        help="an explicit .npz file (e.g. a re-saved MedMNIST file)",
    ),
    opt("--data.as_rgb", type=_bool, default=None, metavar="BOOL", help="repeat grey images to 3 channels"),
    opt(
        "--data.ordinal",
        type=_bool,
        default=None,
        metavar="BOOL",
        help="folder/csv: ordinal grades (QWK reported)",
    ),
    opt(
        "--data.pool_extra",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="add N synthetic-retina images to the pre-training pool (ours)",
    ),
    opt("--data.csv", default=None, metavar="FILE", help="csv layout: the label file"),
    opt("--data.image_dir", default=None, metavar="DIR", help="csv layout: folder of the images"),
    opt("--data.image_col", default=None, metavar="NAME", help="csv layout: image-name column"),
    opt(
        "--data.label_col", default=None, metavar="NAME", help="csv layout: label column (integers or names)"
    ),
    opt(
        "--data.onehot_cols",
        type=comma_list(),
        default=None,
        metavar="A,B,...",
        help="csv layout: one-hot columns",
    ),
)
PRESET = opt(
    "--config",
    default="default",
    metavar="NAME|FILE",
    help="preset for the scratch architecture and default data (default, retinamnist, digits, paper)",
)
INIT = opt(
    "--init",
    default="scratch",
    metavar="INIT",
    help="scratch | RUN_DIR | backbone.pt | pretrain .ckpt | imagenet:PATH (skipped offline without PATH)",
)
PROBE = opt(
    "--probe",
    default="spec",
    choices=PROBE_MODES,
    help="linear probe's C: spec = LogisticRegression(C=1) (spec §2.8); val = chosen on the val split (ours)",
)
PROBE_FEATURES_OPT = opt(
    "--probe-features",
    default="readout",
    choices=PROBE_FEATURES,
    help="probe features: readout (the backbone's, spec §2.8); mean, cls+mean, last4 = CLS of the last 4 blocks (ours)",
)
LAYER_DECAY = opt(
    "--layer-decay",
    type=float,
    default=1.0,
    metavar="D",
    help="fine-tuning layer-wise lr decay (ours; 1.0 = one lr, spec §2.8); same for every initialisation",
)
LABELS = (
    opt(
        "--label-fraction",
        type=_fraction,
        default=None,
        metavar="F",
        help="stratified fraction of the train labels (≥ 1 per class)",
    ),
    opt("--label-k", type=positive_int, default=None, metavar="K", help="K labelled images per class"),
)

main = build_cli(
    "bolt_ssl",
    model="bolt_ssl.module:PretrainModule",
    data="bolt_ssl.module:BoltData",
    prog="bolt",
    version=__version__,
    description=(
        "BOLT (Li et al., arXiv 2301.00989): BYOL-style ViT pre-training on token-wise perturbed views with a "
        "difficulty-ranking task. Perturbation family, ranking-head form, image_aug modes and synthetic-retina "
        "are ours."
    ),
    verbs=[
        TRAIN,
        LightningVerb(
            "pretrain",
            "pre-train with --method bolt|token_byol|byol|mae (= --model.method) on any dataset's train images",
            renames={"--method": "--model.method"},
        ),
        Verb(
            "evaluate",
            "bolt_ssl.commands:evaluate",
            "a checkpoint's metrics: pre-training run → 100 %-label linear probe + pretext diagnostics; "
            "finetuned.pt → its metrics",
            (
                CKPT,
                *DATA_OPTIONS,
                opt("--split", default="test", choices=SPLIT_CHOICES, help="split scored (test)"),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "finetune",
            "bolt_ssl.commands:finetune",
            "fine-tune an initialisation on a label subset (Linear head, AdamW, 200 steps; protocol ours)",
            (
                INIT,
                PRESET,
                *DATA_OPTIONS,
                *LABELS,
                SEED,
                opt("--steps", type=positive_int, default=200, metavar="N", help="optimiser steps (200)"),
                LAYER_DECAY,
                opt(
                    "--init-branch",
                    default="online",
                    choices=("online", "target"),
                    help="encoder taken (online)",
                ),
                opt(
                    "--flips",
                    type=_bool,
                    default=True,
                    metavar="BOOL",
                    help="flip augmentation (true; false where labels are not flip-invariant, e.g. digits)",
                ),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "linear-probe",
            "bolt_ssl.commands:linear_probe",
            "logistic regression on frozen features of a label subset (--pixels: the raw-pixel floor)",
            (
                INIT,
                PRESET,
                *DATA_OPTIONS,
                *LABELS,
                SEED,
                opt("--pixels", flag=True, help="probe raw standardised pixels instead of features"),
                PROBE,
                PROBE_FEATURES_OPT,
                opt(
                    "--init-branch",
                    default="online",
                    choices=("online", "target"),
                    help="encoder taken (online)",
                ),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "reproduce",
            "bolt_ssl.reproduce:reproduce",
            "BOLT vs scratch / pixel BYOL / token-BYOL / MAE at several label fractions (fine-tune + linear probe)",
            (
                *REPRODUCE_OPTIONS,
                opt(
                    "--dataset",
                    default="retinamnist",
                    choices=REPRODUCE_DATASETS,
                    help="retinamnist (default; falls back to synthetic-retina when the file is absent)",
                ),
                opt(
                    "--fractions",
                    type=_fractions,
                    default=None,
                    metavar="LIST",
                    help="label fractions (0.01,0.1,1.0)",
                ),
                opt(
                    "--methods",
                    type=comma_list(INIT_METHODS),
                    default=None,
                    metavar="LIST",
                    help="initialisations (scratch,byol,token_byol,mae,bolt)",
                ),
                opt(
                    "--epochs",
                    type=positive_int,
                    default=None,
                    metavar="E",
                    help="pre-training epochs (60; quick 5)",
                ),
                opt(
                    "--pool-extra",
                    type=non_negative_int,
                    default=0,
                    metavar="N",
                    help="synthetic-retina images added to the pre-training pool (ours)",
                ),
                opt(
                    "--sweep",
                    flag=True,
                    help="add the 'what was tried' BOLT variants (pool, epochs, s_max, ...)",
                ),
                PROBE,
                PROBE_FEATURES_OPT,
                LAYER_DECAY,
                opt(
                    "--probe-only",
                    flag=True,
                    help="linear probes only, no fine-tuning (re-probe cached pre-trainings in --out)",
                ),
                opt(
                    "--branch",
                    type=comma_list(BRANCHES),
                    default=["online"],
                    metavar="LIST",
                    help="encoder(s) of the BYOL-family pre-trainings taken downstream: online (default), target "
                    "(EMA, backbone_target.pt) or online,target; scratch and mae have one encoder (ours)",
                ),
                opt(
                    "--shared-data",
                    default=None,
                    metavar="DIR",
                    help="folder of the shared real data (../shared/data)",
                ),
                DATA_ROOT,
            ),
        ),
        Verb(
            "bench",
            "bolt_ssl.bench:bench",
            "pre-training throughput (images/s), interleaved A/B rounds on in-memory generated images",
            (
                opt(
                    "--methods",
                    type=comma_list(BENCH_METHODS),
                    default=["bolt", "byol"],
                    metavar="LIST",
                    help="bolt,byol[,mae,supervised,bolt_shared_detached,bolt_independent]",
                ),
                opt(
                    "--config",
                    default="retinamnist",
                    metavar="NAME|FILE",
                    help="preset (retinamnist; paper = ViT-S/16 224)",
                ),
                opt("--batch", type=positive_int, default=128, help="batch size (128)"),
                opt("--steps", type=positive_int, default=10, help="steps per round (10)"),
                opt("--rounds", type=positive_int, default=5, help="interleaved rounds (5)"),
                opt("--warmup", type=non_negative_int, default=3, help="warm-up steps (3)"),
                opt("--precision", default="32", choices=("32", "bf16-mixed"), help="32 or bf16-mixed (GPU)"),
                opt("--json", flag=True, help="also print the result as one JSON line"),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "datasets",
            "bolt_ssl.commands:datasets",
            "supported datasets, which MedMNIST files are present, and whether their MD5 is official",
            (DATA_ROOT,),
            run_dir=False,
            uses_torch=False,
        ),
    ],
)

if __name__ == "__main__":
    raise SystemExit(main())
