"""Command line: ``r2rise train|evaluate|validate`` (Lightning) and the package verbs
``demos|explain|delete|compare|reproduce|benchmark``.

Declarations only: the targets are strings and the option choices literal tuples (``tests/test_r2rise_cli.py``
checks them against the registries in the heavy modules), so ``--help``, ``--version`` and ``VERB --help`` never
import torch, gymnasium or Lightning.
"""

from __future__ import annotations

import argparse

from paperlab_core.cli import EVALUATE, TRAIN, VALIDATE, build_cli
from paperlab_core.verbs import (
    DEVICE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    SEEDS,
    THREADS,
    Verb,
    comma_list,
    existing_dir,
    non_negative_int,
    option,
    positive_int,
)

#: ``r2rise.explain.EXPLAIN_LEARNERS``
LEARNER_CHOICES = ("bc_mlp", "bc_linear", "bc_cnn", "iq_mlp", "bco_mlp")
#: ``r2rise.explain.ESTIMATORS``
ESTIMATOR_CHOICES = ("raw", "rise", "centred", "linear")
#: ``sorted(r2rise.explain.DTYPES)``
DTYPE_CHOICES = ("float32", "float64")
#: ``r2rise.learners.OBS_SCALINGS``
OBS_SCALING_CHOICES = ("env", "demos")
#: ``r2rise.reproduce.STUDIES``
STUDY_CHOICES = ("planted", "protocols", "families")


def _fraction_list(text: str) -> list[float]:
    """``"0.1,0.2"`` → [0.1, 0.2], each in (0, 1)."""
    try:
        values = [float(part) for part in comma_list()(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of fractions (0.2,0.4), got {text!r}"
        ) from None
    if not all(0.0 < v < 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"fractions must lie in (0, 1), got {text!r}")
    return values


DEMOS_FILE = option(
    "--demos", default=None, metavar="PATH",
    help="demonstrations .npz, or a folder holding demos.npz (an `r2rise demos` or `explain` run); "
    "default: generate the embedded planted CartPole set",
)  # fmt: skip
N_MASKS = option(
    "--n-masks", type=positive_int, default=200, metavar="N", help="masks = retrainings (default 200)"
)
DTYPE = option("--dtype", default="float64", choices=DTYPE_CHOICES, help="ensemble dtype (default float64)")
ESTIMATOR = option(
    "--estimator",
    default="centred",
    choices=ESTIMATOR_CHOICES,
    help="map used for rankings (default centred)",
)
CNN_HELP = "bc_cnn (Atari) only: "

main = build_cli(
    "r2rise",
    model="r2rise.module:BCPolicyModule",
    data="r2rise.data:DemosDataModule",
    description="R2RISE: explaining imitation learning through demonstration frames (Zheng et al., 2023)",
    verbs=[
        TRAIN,
        EVALUATE,
        VALIDATE,
        Verb(
            "demos",
            "r2rise.commands:demos",
            "expert demonstrations (optionally planted with flipped-label blocks) → <out>/demos.npz",
            (
                option("--env", default="CartPole-v1", help="gymnasium env id (default CartPole-v1)"),
                option(
                    "--demonstrator",
                    default=None,
                    metavar="MODULE:CALLABLE",
                    help="expert policy (default: the env's hand-written expert)",
                ),
                option(
                    "--num-demos",
                    type=positive_int,
                    default=5,
                    metavar="D",
                    help="demonstrations (default 5)",
                ),
                option(
                    "--length",
                    type=non_negative_int,
                    default=200,
                    metavar="T",
                    help="frames per demonstration; 0 = one full episode each (default 200)",
                ),
                option(
                    "--exec-noise",
                    type=float,
                    default=0.1,
                    metavar="EPS",
                    help="probability that the executed action is random; labels stay the expert's (0.1)",
                ),
                option(
                    "--corrupt-frac",
                    type=float,
                    default=0.45,
                    metavar="P",
                    help="probability that a block's labels are flipped (planted ground truth; default 0.45)",
                ),
                option(
                    "--block", type=positive_int, default=10, metavar="K", help="block length in frames (10)"
                ),
                SEED,
                OUT,
            ),
            uses_torch=False,
        ),
        Verb(
            "explain",
            "r2rise.explain:explain",
            "the R2RISE loop: masks → batched retraining → returns → importance maps and heatmaps",
            (
                DEMOS_FILE,
                option(
                    "--learner", default="bc_mlp", choices=LEARNER_CHOICES, help="imitation learner (bc_mlp)"
                ),
                N_MASKS,
                option(
                    "--keep-p",
                    type=float,
                    default=0.5,
                    metavar="P",
                    help="probability of KEEPING a block (0.5)",
                ),
                option(
                    "--block", type=positive_int, default=10, metavar="K", help="block length in frames (10)"
                ),
                option(
                    "--chunk",
                    type=positive_int,
                    default=200,
                    metavar="M",
                    help="models trained at once (200)",
                ),
                SEED,
                option(
                    "--steps",
                    type=positive_int,
                    default=200,
                    metavar="N",
                    help="full-batch Adam steps (bc_cnn: the update cap; default 200)",
                ),
                option("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)"),
                option(
                    "--hidden", type=positive_int, default=32, metavar="H", help="bc_mlp hidden width (32)"
                ),
                option(
                    "--episodes",
                    type=positive_int,
                    default=4,
                    metavar="R",
                    help="evaluation episodes per model (default 4)",
                ),
                option("--epsilon", type=float, default=0.0, help="ε-greedy evaluation (default 0 = greedy)"),
                option("--ridge", type=float, default=1.0, help="λ of the linear estimator (default 1.0)"),
                DTYPE,
                option(
                    "--obs-scaling",
                    default="env",
                    choices=OBS_SCALING_CHOICES,
                    help="env: fixed per-env constants; demos: mean/std of all demonstrations (default env)",
                ),
                option("--cnn-batch", type=positive_int, default=32, help=CNN_HELP + "minibatch (32)"),
                option(
                    "--cnn-val-every",
                    type=positive_int,
                    default=500,
                    help=CNN_HELP + "validation period (500)",
                ),
                option(
                    "--cnn-patience", type=non_negative_int, default=5, help=CNN_HELP + "early stopping (5)"
                ),
                option(
                    "--max-steps",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="evaluation episode cap in agent steps (default: the env's own limit)",
                ),
                option(
                    "--eval-envs",
                    type=positive_int,
                    default=None,
                    metavar="K",
                    help="at most K evaluation envs at once (default: 64 for Atari, about 1.1 GiB; 1024 for "
                    "MountainCar/Acrobot; unbounded for CartPole's numpy vector env)",
                ),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "delete",
            "r2rise.explain:delete",
            "Q2 deletion curves for an explain run: retrain without the top-k / a random k / the bottom-k blocks",
            (
                option(
                    "--run",
                    type=existing_dir,
                    required=True,
                    metavar="DIR",
                    help="an `r2rise explain` run folder",
                ),
                ESTIMATOR,
                option(
                    "--fractions",
                    type=_fraction_list,
                    default=[0.1, 0.2, 0.3, 0.4, 0.5],
                    metavar="LIST",
                    help="fractions of blocks removed (default 0.1,0.2,0.3,0.4,0.5)",
                ),
                SEEDS.but(help="retraining seeds, shared by the three modes (default 0-7)"),
                option(
                    "--paper-percentile",
                    type=float,
                    default=None,
                    metavar="Q",
                    help="also the official variant: keep frames ≤ this quantile of the frame map (0.6)",
                ),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "compare",
            "r2rise.commands:compare",
            "Q3: rank agreement of the maps of two explain runs (same masks expected)",
            (
                option(
                    "--run-a",
                    type=existing_dir,
                    required=True,
                    metavar="DIR",
                    help="first explain run folder",
                ),
                option(
                    "--run-b",
                    type=existing_dir,
                    required=True,
                    metavar="DIR",
                    help="second explain run folder",
                ),
                ESTIMATOR,
                OUT,
            ),
            uses_torch=False,
        ),
        Verb(
            "reproduce",
            "r2rise.reproduce:reproduce",
            "the planted CartPole experiment (planted AUC, Q1, Q2, Q3); --quick: Q2 at 20/40 %, no extra envs",
            (
                *REPRODUCE_OPTIONS,
                N_MASKS,
                DTYPE,
                option(
                    "--study",
                    default="planted",
                    choices=STUDY_CHOICES,
                    help="planted: the spec §5 experiment (default); protocols: planted AUC and Q2 of every "
                    "estimator × observation scaling × evaluation protocol; families: Q3 across learner families",
                ),
            ),
            epilog="Cells: one per planted seed (default seeds 0,1,2); full mode adds clean CartPole, MountainCar "
            "and Acrobot; --study protocols: one per (scaling, protocol, seed); --study families: one per seed. "
            "Shard with --shard K/N and build the tables with --merge DIR...",
        ),
        Verb(
            "benchmark",
            "r2rise.benchmark:benchmark",
            "timings of the batched R2RISE loop against a sequential one-model loop (results.json)",
            (
                N_MASKS,
                DTYPE,
                SEED,
                option(
                    "--compare-sequential", flag=True, help="also run the sequential reference and compare"
                ),
                option("--no-naive", flag=True, help="skip the naive single-env evaluation loop"),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
    ],
    trainer_defaults={"devices": 1},
    cli_class="r2rise.lightning_cli:R2RiseCLI",
)

__all__ = [
    "DTYPE_CHOICES",
    "ESTIMATOR_CHOICES",
    "LEARNER_CHOICES",
    "OBS_SCALING_CHOICES",
    "STUDY_CHOICES",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
