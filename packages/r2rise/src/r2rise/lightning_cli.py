"""The LightningCLI of ``r2rise train|evaluate|validate`` (imported only when a Lightning verb runs)."""

from __future__ import annotations

from pytorch_lightning.cli import LightningArgumentParser

from paperlab_core.lightning import PaperCLI


class R2RiseCLI(PaperCLI):
    """PaperCLI with the env id linked from the data to the model (one source of truth: ``--data.env_id``)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data.env_id", "model.env_id")
