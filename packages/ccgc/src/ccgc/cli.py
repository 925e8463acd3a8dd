"""Command line: ``ccgc train | evaluate | predict | reproduce | sweep | baselines | datasets | benchmark | trace``.

Declarations only: targets are strings and option choices come from :mod:`ccgc.names` (standard library), so
``ccgc --help`` and ``ccgc VERB --help`` never import torch.
"""

from __future__ import annotations

from ccgc.names import DATASETS, METHODS, SWEEP_DATASETS, VARIANTS, dims_list, float_list, int_list
from paperlab_core.cli import EVALUATE, PREDICT, TRAIN, build_cli
from paperlab_core.verbs import (
    DATA_ROOT,
    DEVICE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    SEEDS,
    THREADS,
    Option,
    Verb,
    comma_list,
    existing_file,
    non_negative_int,
    option,
    positive_int,
)

#: datasets that need no file argument (``pyg`` needs ``--data.path FILE``, offered by ``baselines`` only)
NAMED_DATASETS = tuple(d for d in DATASETS if d != "pyg")

#: ``--data.root`` as every ccgc verb reads it (see :func:`ccgc.names.dataset_root`)
CCGC_DATA_ROOT = DATA_ROOT.but(
    help="folder holding the dataset files, or one with planetoid/ and adgc/ subfolders such as ../shared/data "
    "(default: ../shared/data when present, else $PAPERLAB_DATA or ~/.cache/paperlab/ccgc)"
)


def dataset_option(default: str, choices: tuple[str, ...] = NAMED_DATASETS) -> Option:
    return option(
        "--data.dataset", default=default, choices=choices, metavar="NAME",
        help=f"dataset: {', '.join(choices)} (default {default})",
    )  # fmt: skip


EPOCHS = option("--epochs", type=positive_int, default=400, help="training epochs per run (official 400)")

REPRODUCE = Verb(
    "reproduce",
    "ccgc.reproduce:reproduce",
    "the paper's Table 1 rows: k-means baselines, CCGC stable (default)/paper/legacy (and SCGC) over seeds",
    (
        *REPRODUCE_OPTIONS,
        option(
            "--data.dataset", type=comma_list(NAMED_DATASETS), default=None, metavar="LIST",
            help="comma list of datasets (default cora,citeseer,bat,eat,uat; --quick: rpg,karate,digits)",
        ),
        CCGC_DATA_ROOT,
        option(
            "--methods", type=comma_list(METHODS), default=None, metavar="LIST",
            help=f"comma list of {', '.join(METHODS)} (default kmeans,{','.join(VARIANTS)})",
        ),
        EPOCHS,
    ),
    description=(
        "The grid datasets x methods x seeds (default: cora,citeseer,bat,eat,uat x kmeans,paper,stable,legacy x "
        "seeds 0-9; --quick: the generated graphs rpg,karate,digits, seed 0). Methods: kmeans = k-means(X), "
        "k-means(X~), spherical k-means(X~); stable = package default (zero_grad, L_pos = mean over pairs); paper = "
        "the paper's L_pos = sum/K with zero_grad; legacy = official-code parity; scgc = SCGC with its official t/lr. Writes results.json "
        "and results.md (best / best_trained / last, mean +- population std) and a PCA plot per dataset/variant."
    ),
)  # fmt: skip

BASELINES = Verb(
    "baselines",
    "ccgc.commands:baselines",
    "k-means(X), k-means(X~), spherical k-means(X~) (and SCGC with --scgc) over seeds on one dataset",
    (
        dataset_option("rpg", DATASETS),
        CCGC_DATA_ROOT,
        option("--data.path", type=existing_file, default=None, metavar="FILE",
               help="a torch.save'd torch_geometric Data (with --data.dataset pyg)"),
        option("--data.t", type=non_negative_int, default=4, help="filter layers t of X~ = H^t X (default 4)"),
        SEEDS.but(help="seeds: a comma list (0,1,2) or an inclusive range (0-4); default 0-2"),
        option("--scgc", flag=True, help="also run the SCGC baseline (its official t/lr, 400 epochs per seed)"),
        THREADS,
        DEVICE,
        OUT,
    ),
)  # fmt: skip

DATASETS_VERB = Verb(
    "datasets",
    "ccgc.commands:datasets",
    "the paper's datasets and the generated ones, and where their files were found",
    (CCGC_DATA_ROOT,),
    run_dir=False,
    uses_torch=False,
)

BENCHMARK = Verb(
    "benchmark",
    "",
    "performance: `epoch-time` (ours vs the official dense pattern) and `scale` (100k-node sparse SBM)",
    subverbs=(
        Verb(
            "epoch-time",
            "ccgc.benchmarks:epoch_time",
            "per-epoch time on one dataset: ours vs the official computational pattern, same CPU and threads",
            (dataset_option("cora"), CCGC_DATA_ROOT, EPOCHS, THREADS, OUT),
        ),
        Verb(
            "scale",
            "ccgc.benchmarks:scale",
            "the sparse-SBM scale run: wall time, peak RSS, metrics (no N x N matrix anywhere)",
            (
                option("--nodes", type=positive_int, default=100_000, help="nodes (default 100000)"),
                option("--edges", type=positive_int, default=1_000_000, help="edge draws (default 1000000)"),
                option("--clusters", type=positive_int, default=10, help="classes K (default 10)"),
                option("--features", type=positive_int, default=128, help="feature dimension (default 128)"),
                EPOCHS.but(default=61, help="epochs (default 61: 51 warm-up + 10 cluster-guided)"),
                option("--kmeans-n-init", type=positive_int, default=1, help="k-means restarts (default 1)"),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
    ),
)

TRACE = Verb(
    "trace",
    "ccgc.trace:trace",
    "one run with per-re-clustering collapse diagnostics (loss parts, ACC/NMI, ||mean E||, gradient, W1 steps)",
    (
        dataset_option("cora"),
        CCGC_DATA_ROOT,
        option(
            "--variant",
            default="stable",
            choices=VARIANTS,
            help="CCGC variant (default stable, the package default)",
        ),
        SEED,
        EPOCHS,
        option("--every", type=positive_int, default=10, help="print every N epochs (re-clustering epochs)"),
        option("--lr", type=float, default=None, help="override the Adam learning rate"),
        THREADS,
        DEVICE,
        OUT,
    ),
)

SWEEP = Verb(
    "sweep",
    "ccgc.sweep:sweep",
    "sensitivity study: full grids over t, lr and dims (last and best) on BAT, EAT, UAT",
    (
        *REPRODUCE_OPTIONS,
        option(
            "--data.dataset", type=comma_list(SWEEP_DATASETS), default=None, metavar="LIST",
            help="comma list of datasets with a Table 1 row (default bat,eat,uat)",
        ),
        CCGC_DATA_ROOT,
        option(
            "--methods", type=comma_list(VARIANTS), default=None, metavar="LIST",
            help=f"CCGC variants, a comma list of {', '.join(VARIANTS)} (default stable,legacy)",
        ),
        option("--t", type=int_list, default=None, metavar="LIST", help="filter layers (default 1-5; --quick: 4)"),
        option("--lr", type=float_list, default=None, metavar="LIST", help="Adam learning rates (default 1e-4,1e-3)"),
        option("--dims", type=dims_list, default=None, metavar="LIST",
               help="encoder widths: integers or D = the input dimension (default 500,D)"),
        EPOCHS,
    ),
    description=(
        "The grid datasets x variants x t x lr x dims x seeds (default bat,eat,uat x stable,legacy x t 1-5 x lr "
        "1e-4,1e-3 x dims 500,D x seeds 0-2; --quick: t=4, seed 0), official settings otherwise. Writes "
        "results.json/results.md: one full grid per dataset and variant (last and best ACC/NMI, whether the "
        "cell reaches the paper's Table 1 ACC) and a summary. Picking a cell by these numbers uses the labels."
    ),
)  # fmt: skip

main = build_cli(
    "ccgc",
    max_devices=1,  # full-batch training on one graph: DDP ranks would each see the whole graph
    model="ccgc.module:CCGCModule",
    data="ccgc.data:CCGCDataModule",
    description="CCGC: cluster-guided contrastive graph clustering (Yang et al., AAAI 2023)",
    verbs=[TRAIN, EVALUATE, PREDICT, REPRODUCE, SWEEP, BASELINES, DATASETS_VERB, BENCHMARK, TRACE],
    trainer_defaults={"accelerator": "auto", "devices": 1},
)

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
