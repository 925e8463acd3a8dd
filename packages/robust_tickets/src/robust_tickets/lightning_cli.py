"""The LightningCLI of ``robust-tickets`` (imported only when a Lightning verb runs).

The stage verbs (``finetune``, ``search``, ``draw``, ``pipeline``) are ``train`` with a fixed
``--model.method``. :class:`paperlab_core.cli.LightningVerb` puts its fixed arguments *before* the user's, so a
``--config`` preset that sets ``model.method`` (``mr-minilm``, the paper presets) would silently turn
``finetune --config mr-minilm`` into a full robust run. :class:`TicketCLI` appends the stage's method last, so
the verb's method always wins.
"""

from __future__ import annotations

from typing import Any

from paperlab_core.lightning import PaperCLI

#: the method each stage verb runs
STAGE_METHODS = {"finetune": "finetune", "search": "search", "draw": "draw", "pipeline": "robust"}


def stage_args(verb: str, args: Any) -> Any:
    """``args`` with the stage verb's ``--model.method`` appended (unchanged for other verbs and for --help)."""
    method = STAGE_METHODS.get(verb)
    if method is None or not isinstance(args, list) or any(a in {"-h", "--help"} for a in args):
        return args
    return [*args, f"--model.method={method}"]


class TicketCLI(PaperCLI):
    """PaperCLI whose stage verbs always run their own method (see the module docstring)."""

    def parse_arguments(self, parser: Any, args: Any) -> None:
        super().parse_arguments(parser, stage_args(self.verb.name, args))
