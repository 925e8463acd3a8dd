"""Command line: ``dfme train|evaluate`` (Lightning) and the package verbs ``prepare|validate|preprocess|generate|
cv|reproduce|bench|list``.

Declarations only: targets are strings and option choices literal tuples (``tests/test_dfme_cli.py`` checks them
against the registries), so ``--help``, ``--version`` and ``VERB --help`` never import numpy, torch or OpenCV.
"""

from __future__ import annotations

from paperlab_core.cli import EVALUATE, TRAIN, build_cli
from paperlab_core.verbs import (
    DATA_ROOT,
    DEVICE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    SEEDS,
    THREADS,
    Verb,
    comma_list,
    option,
    positive_float,
    positive_int,
)

#: ``dfme.models.registry.MODELS``
MODEL_CHOICES = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d_lite", "ststnet", "offapexnet")
#: ``dfme.sampling.STRATEGIES``
SAMPLING_CHOICES = (
    "uniform_on_off", "tim_on_off", "uniform_on_apex", "tim_on_apex", "apex_window", "fixed_dt",
    "segment_random", "onset_apex_pair", "uniform_full",
)  # fmt: skip
#: ``dfme.losses.IMBALANCE``
IMBALANCE_CHOICES = ("ce", "inv_freq", "cb", "focal", "balanced_sampler", "ldam_drw", "logit_adjust")
#: ``dfme.dataset.LAYOUTS``
LAYOUT_CHOICES = ("dfme", "casme2", "samm")
#: ``dfme.flow.FLOWS``
FLOW_CHOICES = ("farneback", "tvl1")
TASK_CHOICES = ("emotion", "au")
#: ``dfme.reproduce.TABLES``
TABLE_CHOICES = ("gate", "A", "B", "C", "D", "au")
FORMAT_CHOICES = ("npy", "jpg", "mp4")


LAYOUT = option("--layout", default="dfme", choices=LAYOUT_CHOICES, help="on-disk layout (default dfme)")
MEB_FIXES = option(
    "--meb-fixes",
    flag=True,
    help="CASME II/SAMM: re-apply MEB's corrections of known sheet errors instead of raising",
)
CACHE_DIR = option(
    "--cache-dir", default=None, metavar="DIR", help="cache folder (default ~/.cache/paperlab/dfme/cache)"
)
PIPELINE_OPTIONS = (
    option(
        "--data.sampling",
        default="tim_on_off",
        choices=SAMPLING_CHOICES,
        help="key-frame strategy (tim_on_off)",
    ),
    option("--data.num_frames", type=positive_int, default=16, metavar="T", help="frames per clip (16)"),
    option("--data.size", type=positive_int, default=112, metavar="S", help="aligned frame side (112)"),
    option("--data.flow", default=None, choices=FLOW_CHOICES, help="also cache onset→apex flow features"),
    option("--grayscale", flag=True, help="grayscale output"),
)
CONFIG = option("--config", default=None, metavar="NAME|FILE", help="preset (default, paper) or YAML file")
MODEL = option("--model.name", default=None, choices=MODEL_CHOICES, help="model (default: the preset's)")
IMBALANCE = option("--model.imbalance", default=None, choices=IMBALANCE_CHOICES, help="imbalance remedy")
SAMPLING = option("--data.sampling", default=None, choices=SAMPLING_CHOICES, help="key-frame strategy")
TASK = option(
    "--data.task", default=None, choices=TASK_CHOICES, help="emotion (7 classes) or au (multi-label)"
)
EPOCHS = option("--trainer.max_epochs", type=positive_int, default=None, metavar="N", help="epochs per fold")

main = build_cli(
    "dfme",
    model="dfme.module:MERModule",
    data="dfme.data:DFMEDataModule",
    description="DFME: dynamic facial micro-expression recognition benchmark (Zhao et al., IEEE TAC 2024)",
    verbs=[
        TRAIN,
        EVALUATE,
        Verb(
            "prepare",
            "dfme.commands:prepare",
            "validate a dataset root and cache its preprocessed clips (and flows): `dfme prepare ROOT`",
            (
                option(
                    "root", type=str, default=None, metavar="ROOT", help="dataset root (default: synthetic)"
                ),
                LAYOUT,
                MEB_FIXES,
                *PIPELINE_OPTIONS,
                CACHE_DIR,
                THREADS,
                OUT,
            ),
        ),
        Verb(
            "validate",
            "dfme.commands:validate",
            "check a dataset root against the format rules; print samples per part/class/subject and AUs",
            (DATA_ROOT.but(required=True), LAYOUT, MEB_FIXES, OUT),
            uses_torch=False,
        ),
        Verb(
            "preprocess",
            "dfme.commands:preprocess",
            "detection/alignment/TIM (and flow) cache for --data.root; reports align_status and TIM fallbacks",
            (
                DATA_ROOT,
                LAYOUT,
                MEB_FIXES,
                *PIPELINE_OPTIONS,
                CACHE_DIR,
                THREADS,
                OUT,
            ),
        ),
        Verb(
            "generate",
            "dfme.commands:generate",
            "write the synthetic benchmark (spec §3a) in the DFME layout",
            (
                OUT.but(required=True, help="output folder (the dataset root)"),
                option("--subjects", type=positive_int, default=60, metavar="N", help="subjects (60)"),
                option(
                    "--format", default="npy", choices=FORMAT_CHOICES, help="frames as npy, jpg or mp4 (npy)"
                ),
                option(
                    "--frames", type=positive_int, default=None, metavar="N", help="fixed frames per clip"
                ),
                option(
                    "--limit",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="write only the first N clips",
                ),
                SEED,
            ),
            uses_torch=False,
        ),
        Verb(
            "cv",
            "dfme.cv:cv",
            "subject-independent cross-validation: per-fold and concatenated UF1/UAR/ACC",
            (
                CONFIG,
                MODEL,
                IMBALANCE,
                SAMPLING,
                TASK,
                EPOCHS,
                option("--folds", type=positive_int, default=10, metavar="K", help="folds (10)"),
                option(
                    "--run-folds",
                    type=comma_list(),
                    default=None,
                    metavar="LIST",
                    help="only these folds (0,1,2)",
                ),
                DATA_ROOT,
                SEEDS,
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "reproduce",
            "dfme.reproduce:reproduce",
            "models × imbalance × sampling × data size (+ AU) on the synthetic benchmark; --quick: 3 folds, 1 seed",
            (
                *REPRODUCE_OPTIONS,
                option(
                    "--full", flag=True, help="every table with 3 seeds and more epochs (meant for a GPU)"
                ),
                option(
                    "--tables",
                    type=comma_list(TABLE_CHOICES),
                    default=None,
                    metavar="LIST",
                    help="only these tables: gate, A, B, C, D, au (default all)",
                ),
                option(
                    "--folds",
                    type=comma_list(),
                    default=None,
                    metavar="LIST",
                    help="only these of the 10 folds (default: 0,1,2 with --quick, else all)",
                ),
                option(
                    "--epochs",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="epochs per fold (6; --quick 3, --full 12)",
                ),
                option(
                    "--lr",
                    type=positive_float,
                    default=None,
                    metavar="LR",
                    help="AdamW lr of every cell (default: a --config file's model.lr, else 1e-3, the spec's; records before 0.3.0 used 3e-3)",
                ),
                option(
                    "--weight-reduction",
                    choices=("mean", "weighted_mean"),
                    default=None,
                    help="batch loss of inv_freq/cb cells: mean of w_y·CE (Cui et al.; default) or Σ w_y·CE / Σ w_y "
                    "(PyTorch's weighted mean; dfme ≤ 0.3, keys without -rmean)",
                ),
                CONFIG.but(help="preset or YAML merged over default.yaml for every cell (e.g. paper)"),
            ),
            epilog="Cells: one per (table row, seed, fold). Shard with --shard K/N, build tables with --merge DIR...",
        ),
        Verb(
            "bench",
            "dfme.bench:bench",
            "spec §7 timings: data pipeline clips/s and batched TIM vs a per-frame loop (bench.json)",
            (
                option(
                    "--what", default="all", choices=("pipeline", "tim", "all"), help="what to time (all)"
                ),
                option("--clips", type=positive_int, default=64, metavar="N", help="benchmark clips (64)"),
                option("--passes", type=positive_int, default=3, metavar="P", help="timed passes (3)"),
                option("--workers", type=positive_int, default=2, metavar="W", help="DataLoader workers (2)"),
                option(
                    "--layouts",
                    type=comma_list(FORMAT_CHOICES),
                    default=["npy"],
                    metavar="LIST",
                    help="layouts to time: npy (gated), jpg, mp4 (default npy)",
                ),
                THREADS,
                OUT,
            ),
        ),
        Verb(
            "list",
            "dfme.commands:list_registries",
            "models, sampling strategies, imbalance methods, metrics",
            (),
            run_dir=False,
            uses_torch=False,
        ),
    ],
    trainer_defaults={"devices": 1},
    cli_class="dfme.lightning_cli:DFMECLI",
)

__all__ = ["IMBALANCE_CHOICES", "LAYOUT_CHOICES", "MODEL_CHOICES", "SAMPLING_CHOICES", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
