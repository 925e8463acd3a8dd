"""Command line: ``ccgc train | evaluate | validate | predict | reproduce | baselines | datasets | benchmark | trace``."""

from __future__ import annotations

from ccgc import __version__
from ccgc.commands import baselines_main, benchmark_main, datasets_main
from ccgc.data import CCGCDataModule
from ccgc.module import CCGCModule
from ccgc.reproduce import reproduce_main
from ccgc.trace import trace_main
from paperlab_core.cli import build_cli

main = build_cli(
    "ccgc",
    CCGCModule,
    CCGCDataModule,
    version=__version__,
    description="CCGC: cluster-guided contrastive graph clustering (Yang et al., AAAI 2023)",
    commands={
        "reproduce": reproduce_main,
        "baselines": baselines_main,
        "datasets": datasets_main,
        "benchmark": benchmark_main,
        "trace": trace_main,
    },
    trainer_defaults={"accelerator": "auto", "devices": 1},
)
