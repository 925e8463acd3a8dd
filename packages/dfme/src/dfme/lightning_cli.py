"""The LightningCLI of ``dfme train|evaluate`` (imported only when a Lightning verb runs): one source of truth
for settings both sides need (``data.task`` → model; ``model.name``/``model.imbalance`` → data)."""

from __future__ import annotations

from pytorch_lightning.cli import LightningArgumentParser

from paperlab_core.lightning import PaperCLI


def _uses_sampler(imbalance: str) -> bool:
    return imbalance == "balanced_sampler"


class DFMECLI(PaperCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_arguments_to_parser(parser)
        parser.link_arguments("data.task", "model.task")
        parser.link_arguments("data.clip_input", "model.clip_input")
        parser.link_arguments("model.name", "data.model_name")
        parser.link_arguments("model.imbalance", "data.balanced_sampler", compute_fn=_uses_sampler)
