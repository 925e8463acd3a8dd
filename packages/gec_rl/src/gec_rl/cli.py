"""``gec-rl`` entry point: Lightning verbs (train/evaluate), the regret study and the package's numpy verbs.

Only declarations live here (targets are strings, choices literal tuples), so ``gec-rl --help`` and every
``gec-rl VERB --help`` answer without importing numpy, torch or Lightning; ``regret``, ``envs``, ``solve`` and
``bench plan`` run without torch (``uses_torch=False``).
"""

from __future__ import annotations

from paperlab_core.cli import EVALUATE, TRAIN, build_cli
from paperlab_core.verbs import (
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    SEEDS,
    THREADS,
    Verb,
    comma_list,
    option,
    positive_int,
)

#: the short env names of :data:`gec_rl.envs.ENV_NAMES` (a test checks they agree); toy-text gymnasium ids work too
ENV_NAMES = (
    "frozenlake", "frozenlake8x8", "cliffwalking", "taxi", "riverswim", "deep_sea", "deepsea", "chain_det",
    "chain_stoch", "chain_bootdqn",
)  # fmt: skip
#: the agent ids of :data:`gec_rl.agents.AGENT_NAMES` (a test checks they agree)
AGENT_NAMES = ("ops_mb", "psrl", "max_of_j", "ucbvi", "eps_greedy_q", "ops_mf", "ops_linear_lmc", "opsrl")
DEFAULT_ENVS = ("riverswim", "frozenlake")
DEFAULT_AGENTS = ("ops_mb", "psrl", "max_of_j", "ucbvi", "eps_greedy_q")


def positive_int_list(text: str) -> list[int]:
    """``"8,64,512"`` → ``[8, 64, 512]`` (every item a positive integer)."""
    import argparse

    try:
        items = [int(item) for item in str(text).split(",") if item.strip()]
    except ValueError:
        items = []
    if not items or min(items) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, got {text!r}")
    return items


EPISODES = option(
    "--data.episodes",
    type=positive_int,
    default=2000,
    metavar="T",
    help="episodes per run, T (default 2000; the same field as `train --data.episodes`)",
)
HORIZON = option(
    "--data.horizon",
    type=positive_int,
    default=20,
    metavar="H",
    help="horizon H (default 20; the same field as `train --data.horizon`)",
)
ENV = option(
    "--data.env",
    default="frozenlake",
    metavar="ENV",
    help=f"env: one of {', '.join(ENV_NAMES)} or a toy-text gymnasium id (default frozenlake)",
)

REGRET_OPTIONS = (
    option(
        "--envs",
        type=comma_list(),
        default=list(DEFAULT_ENVS),
        metavar="LIST",
        help=f"comma list of envs from {', '.join(ENV_NAMES)} or toy-text gymnasium ids "
        f"(default {','.join(DEFAULT_ENVS)})",
    ),
    option(
        "--agents",
        type=comma_list(),
        default=list(DEFAULT_AGENTS),
        metavar="LIST",
        help=f"comma list of agent specs from {', '.join(AGENT_NAMES)}; options as ops_mb:eta=0.5:M=16 "
        f"(default {','.join(DEFAULT_AGENTS)})",
    ),
    SEEDS.but(
        default=[0, 1, 2], help="seeds: a comma list (0,1,2) or an inclusive range (0-4); default 0,1,2"
    ),
    EPISODES,
    HORIZON,
    option(
        "--workers",
        type=positive_int,
        default=2,
        metavar="N",
        help="parallel worker processes (results do not depend on it; default 2)",
    ),
    OUT,
    THREADS,
)
SOLVE_OPTIONS = (
    ENV,
    HORIZON,
    option("--mc", type=int, default=0, metavar="N", help="Monte-Carlo rollouts of pi* (0 = none)"),
    SEED,
)
BENCH_PLAN_OPTIONS = (
    ENV.but(default="taxi", help=f"env (default taxi): one of {', '.join(ENV_NAMES)}"),
    option("--M", type=positive_int, default=8, help="posterior models (default 8)"),
    HORIZON,
    option(
        "--count-episodes",
        type=positive_int,
        default=200,
        metavar="N",
        help="uniformly random episodes for the count table (default 200)",
    ),
    option("--repeats", type=positive_int, default=10, help="timed repeats (median; default 10)"),
    SEED,
    OUT,
    THREADS,
)
SIR_BIAS_OPTIONS = (
    option(
        "--envs",
        type=comma_list(),
        default=list(DEFAULT_ENVS),
        metavar="LIST",
        help=f"comma list of envs (default {','.join(DEFAULT_ENVS)})",
    ),
    option(
        "--Ms",
        type=positive_int_list,
        default=[8, 64, 512],
        metavar="LIST",
        help="SIR sizes M (default 8,64,512)",
    ),
    option(
        "--gammas",
        type=comma_list(),
        default=["5", "theory"],
        metavar="LIST",
        help="fixed optimism weights γ; 'theory' is theory_gamma of the env (default 5,theory)",
    ),
    option("--eta", type=float, default=0.5, help="likelihood temperature η of the posterior (default 0.5)"),
    option(
        "--snapshot-episodes",
        type=positive_int,
        default=100,
        metavar="N",
        help="PSRL episodes whose counts define the fixed posterior (default 100)",
    ),
    option("--reps", type=positive_int, default=200, help="SIR repetitions per M (default 200)"),
    option(
        "--reference",
        type=positive_int,
        default=65536,
        metavar="N",
        help="posterior draws of the self-normalised reference (default 65536)",
    ),
    EPISODES.but(default=2000, help="T of the theory γ (default 2000)"),
    HORIZON,
    SEED,
    OUT,
    THREADS,
)
POSTERIOR_CHECK_OPTIONS = (
    option(
        "--agent",
        default="all",
        choices=("all", "ops_mf", "ops_linear_lmc"),
        help="which sampler family to check (default all)",
    ),
    OUT,
    THREADS,
)

main = build_cli(
    "gec_rl",
    model="gec_rl.module:RegretModule",
    data="gec_rl.data:EpisodeDataModule",
    description=(
        "GEC / optimistic posterior sampling (Zhong et al., arXiv 2211.01962) with an exact tabular regret harness."
    ),
    verbs=[
        TRAIN,
        EVALUATE,
        Verb(
            "regret",
            "gec_rl.study:regret",
            "the regret study: envs × agents × seeds (regret.csv, summary.md, results.json, one PNG per env)",
            REGRET_OPTIONS,
            uses_torch=False,
        ),
        Verb(
            "decompose",
            "gec_rl.study:decompose",
            "the regret study with the decomposition table: R(T), Σ optimism gap, Σ prediction error, "
            "in-sample loss, training error, empirical GEC",
            REGRET_OPTIONS,
            uses_torch=False,
        ),
        Verb(
            "sir-bias",
            "gec_rl.sir_bias:sir_bias",
            "bias of the finite-M SIR sampler of ops_mb: E[V_sel] for several M against a high-M reference",
            SIR_BIAS_OPTIONS,
            uses_torch=False,
        ),
        Verb(
            "reproduce",
            "gec_rl.reproduce:reproduce",
            "spec §5: the regret study + eta = 1/2, model-free/linear OPS, Tiger, and the behavioural checks",
            REPRODUCE_OPTIONS,
            description=(
                "The spec §5 experiment: the default regret study plus ops_mb:eta=0.5 on RiverSwim and FrozenLake, "
                "ops_mf / ops_mf (Gibbs) / ops_linear_lmc on RiverSwim and ops_pomdp on Tiger, then the "
                "behavioural checks (results.json, results.md, plots). T = 2000, seeds 0,1,2; --quick: T = 500, "
                "seeds 0,1. --device places the torch agent (ops_linear_lmc); the others are numpy."
            ),
        ),
        Verb(
            "envs",
            "gec_rl.commands:envs",
            "the supported envs with S, A, H, V*_1(mu) and the reward rescale",
            (HORIZON.but(default=None, help="horizon (default: each env's own)"),),
            run_dir=False,
            uses_torch=False,
        ),
        Verb(
            "solve",
            "gec_rl.commands:solve",
            "V*, the optimal policy's exact value and optionally a Monte-Carlo check through env.step",
            SOLVE_OPTIONS,
            run_dir=False,
            uses_torch=False,
        ),
        Verb(
            "bench",
            "",
            "benchmarks: `bench plan` (sampling + planning of M posterior models, dense vs sparse)",
            subverbs=(
                Verb(
                    "plan",
                    "gec_rl.bench:plan_verb",
                    "spec §7.1: dense/sparse Dirichlet sampling and batched/reference planning (bench.json)",
                    BENCH_PLAN_OPTIONS,
                    uses_torch=False,
                ),
            ),
        ),
        Verb(
            "posterior-check",
            "gec_rl.posterior_check:posterior_check",
            "the approximate samplers against exact references on tiny problems (TV distance, moments)",
            POSTERIOR_CHECK_OPTIONS,
        ),
    ],
    trainer_defaults={
        "max_epochs": 1,
        "accelerator": "cpu",
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 50,
    },
)

if __name__ == "__main__":
    raise SystemExit(main())
