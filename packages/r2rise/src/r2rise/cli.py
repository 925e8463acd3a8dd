"""Command line: ``r2rise train|evaluate|validate`` (Lightning) and ``demos|explain|delete|compare|reproduce|benchmark``."""

from __future__ import annotations

from pytorch_lightning.cli import LightningArgumentParser

from paperlab_core.cli import PaperCLI, build_cli
from r2rise import __version__
from r2rise.benchmark import benchmark_main
from r2rise.commands import compare_main, delete_main, demos_main
from r2rise.data import DemosDataModule
from r2rise.explain import explain_main
from r2rise.module import BCPolicyModule
from r2rise.reproduce import reproduce_main


class R2RiseCLI(PaperCLI):
    """PaperCLI with the env id linked from the data to the model (one source of truth)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data.env_id", "model.env_id")


main = build_cli(
    "r2rise",
    BCPolicyModule,
    DemosDataModule,
    version=__version__,
    description="R2RISE: explaining imitation learning through demonstration frames (Zheng et al., 2023)",
    commands={
        "demos": demos_main,
        "explain": explain_main,
        "delete": delete_main,
        "compare": compare_main,
        "reproduce": reproduce_main,
        "benchmark": benchmark_main,
    },
    trainer_defaults={"accelerator": "cpu", "devices": 1},
    cli_class=R2RiseCLI,
)
