"""Command line: ``doorping train|distill|attack|evaluate`` (Lightning) and ``defend|reproduce|bench``.

Declarations only (targets as strings, choices as literal tuples checked against the registries by the tests), so
``--help``, ``--version`` and ``VERB --help`` never import torch or Lightning.
"""

from __future__ import annotations

from paperlab_core.cli import LightningVerb, build_cli
from paperlab_core.verbs import (
    DEVICE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    THREADS,
    Verb,
    existing_dir,
    existing_file,
    option,
    positive_int,
)

#: ``doorping.config.METHODS``
METHOD_CHOICES = ("dc", "dd", "dm")
#: ``doorping.trigger.ATTACKS``
ATTACK_CHOICES = ("none", "naive", "doorping", "invisible")
#: ``("all", *doorping.defences.DEFENCES)``
DEFENCE_CHOICES = ("all", "neural-cleanse", "strip", "fine-pruning", "range-check")
#: ``doorping.reproduce.PRESETS``
PRESET_CHOICES = ("toy", "mnist-offline", "mnist-reduced", "cifar10-subset")

DISTILL_RENAMES = {
    "--method": "--model.method",
    "--attack": "--model.attack",
    "--ipc": "--model.ipc",
    "--seed": "--model.seed",
    "--iterations": "--model.iterations",
    "--arch": "--model.arch",
    "--trigger.bound": "--model.trigger.bound",
    "--dsa": "--model.dc.dsa",
}

TRAIN = LightningVerb(
    "train",
    "distil the embedded default (digits, DC, DOORPING) and evaluate it on fresh nets (Lightning fit + test)",
    stages=("fit", "test"),
)
DISTILL = LightningVerb(
    "distill",
    "distil a dataset (--method dc|dd|dm --attack none|naive|doorping|invisible --trigger.bound ...) and "
    "evaluate it; writes distilled.pt/png and trigger.pt/png",
    stages=("fit", "test"),
    renames=DISTILL_RENAMES,
)
ATTACK = LightningVerb(
    "attack",
    "distill with --attack doorping (alias)",
    stages=("fit", "test"),
    args=("--model.attack", "doorping"),
    renames=DISTILL_RENAMES,
)
EVALUATE = LightningVerb(
    "evaluate",
    "CTA and ASR of fresh nets trained on a distilled set: --ckpt PATH (config restored) or --distilled FILE "
    "[--trigger FILE] [--arch A --num-eval N --epochs E --lr LR]",
    stages=("test",),
    restores_config=True,
    renames={
        "--distilled": "--model.distilled",
        "--trigger": "--model.trigger_file",
        "--arch": "--model.evaluation.arch",
        "--num-eval": "--model.evaluation.num_eval",
        "--epochs": "--model.evaluation.epochs",
        "--lr": "--model.evaluation.lr",
    },
)

main = build_cli(
    "doorping",
    max_devices=1,  # one synthetic set optimised by one process: DDP ranks would each distil the whole set
    model="doorping.module:DistillModule",
    data="doorping.data:DistillData",
    description="DOORPING: backdoor attacks against dataset distillation (NAIVEATTACK, DOORPING; NDSS 2023)",
    verbs=[
        TRAIN,
        DISTILL,
        ATTACK,
        EVALUATE,
        Verb(
            "defend",
            "doorping.defend:defend",
            "train a victim on a distilled set (--distilled) or load an external model (--victim) and run backdoor "
            "defences → defence.json + PNGs",
            (
                option(
                    "--defence", default="all", choices=DEFENCE_CHOICES, help="which defence (default all)"
                ),
                option("--distilled", type=existing_file, default=None, metavar="PATH", help="distilled.pt"),
                option(
                    "--victim",
                    type=existing_file,
                    default=None,
                    metavar="PATH",
                    help="audit these weights instead: victim.pt or a state dict (inputs normalised as the dataset)",
                ),
                option(
                    "--arch", default=None, metavar="A", help="--victim's architecture (if the file has none)"
                ),
                option(
                    "--dataset", default=None, metavar="D", help="--victim's dataset (if the file has none)"
                ),
                option("--trigger", type=existing_file, default=None, metavar="PATH", help="trigger.pt"),
                option(
                    "--data.root", default=None, metavar="DIR", help="dataset folder (see `train --help`)"
                ),
                option(
                    "--n-clean",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="defender's clean images (default 10 %% of the test split, stratified)",
                ),
                option("--quick", flag=True, help="the smallest budget (CI): fewer epochs and samples"),
                SEED,
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "reproduce",
            "doorping.reproduce:reproduce",
            "the toy experiment of spec §5.1 (clean, NAIVE, DOORPING unclamped and clamped × seeds) → results.json",
            (
                *REPRODUCE_OPTIONS,
                option(
                    "--preset", default="toy", choices=PRESET_CHOICES, help="dataset preset (default toy)"
                ),
                option(
                    "--iterations",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="distillation iterations of every cell instead of the preset's (cell keys get -itN)",
                ),
                option("--with-defences", flag=True, help="also the defence table (§5.1)"),
                option(
                    "--extras",
                    flag=True,
                    help="also DD, DM, INVISIBLE, linf:0.1, active-neuron and DSA rows (reported only)",
                ),
                option(
                    "--eval-nets",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="evaluation nets per cell in the tables: adds cells KEY/net1 … KEY/net{N-1}, each one more "
                    "net trained on the cell's saved set (default: the preset's own count, no extra cells)",
                ),
                option(
                    "--distilled-from",
                    type=existing_dir,
                    nargs="+",
                    default=None,
                    metavar="DIR",
                    help="earlier reproduce folders whose cells/<cell>/distilled.pt the extra nets may use "
                    "(otherwise --out's, distilled first when absent)",
                ),
            ),
        ),
        Verb(
            "bench",
            "doorping.bench:bench",
            "performance measurements (spec §7)",
            subverbs=(
                Verb(
                    "dc",
                    "doorping.bench:bench_dc",
                    "DC iterations with DOORPING: the fast path vs the official design (hook leak, model per "
                    "trigger step, no detach) → bench.json",
                    (
                        option(
                            "--iterations", type=positive_int, default=5, help="timed iterations (default 5)"
                        ),
                        option(
                            "--max-steps", type=positive_int, default=1000, help="trigger steps cap (1000)"
                        ),
                        option(
                            "--outer-loop", type=positive_int, default=10, help="outer loop (official 10)"
                        ),
                        option(
                            "--inner-loop", type=positive_int, default=50, help="inner loop (official 50)"
                        ),
                        SEED,
                        THREADS.but(default=2),
                        OUT,
                    ),
                ),
            ),
        ),
    ],
    trainer_defaults={"devices": 1, "inference_mode": False},
)

__all__ = ["ATTACK_CHOICES", "DEFENCE_CHOICES", "METHOD_CHOICES", "PRESET_CHOICES", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
