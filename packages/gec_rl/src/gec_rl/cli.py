"""``gec-rl`` entry point: Lightning verbs (train/evaluate) plus the regret study and package commands."""

from __future__ import annotations

from gec_rl import __version__
from gec_rl.commands import bench_main, envs_main, reproduce_main, solve_main
from gec_rl.data import EpisodeDataModule
from gec_rl.module import RegretModule
from gec_rl.posterior_check import posterior_check_main
from gec_rl.study import regret_main
from paperlab_core.cli import build_cli

main = build_cli(
    "gec_rl",
    RegretModule,
    EpisodeDataModule,
    version=__version__,
    description="GEC / optimistic posterior sampling (Zhong et al., arXiv 2211.01962) with an exact regret harness.",
    commands={
        "regret": regret_main,
        "reproduce": reproduce_main,
        "envs": envs_main,
        "solve": solve_main,
        "bench": bench_main,
        "posterior-check": posterior_check_main,
    },
    trainer_defaults={
        "max_epochs": 1,
        "accelerator": "cpu",
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 50,
    },
)

if __name__ == "__main__":
    raise SystemExit(main())
