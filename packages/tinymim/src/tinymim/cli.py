"""Command line: ``tinymim train [--chain ...] | finetune | pretrain-teacher | evaluate | export | reproduce | bench``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from paperlab_core.cli import build_cli
from tinymim import __version__
from tinymim.chain import run_chain, split_chain_args
from tinymim.commands import bench_main, evaluate_main, export_main, finetune_main
from tinymim.data import TinyMIMDataModule
from tinymim.module import TinyMIMDistill
from tinymim.pretrain import pretrain_main
from tinymim.reproduce import reproduce_main

_main = build_cli(
    "tinymim",
    TinyMIMDistill,
    TinyMIMDataModule,
    version=__version__,
    description="TinyMIM (CVPR 2023): distil MIM-pre-trained ViTs into small ViTs with relation distillation.",
    commands={
        "pretrain-teacher": pretrain_main,
        "finetune": finetune_main,
        "evaluate": evaluate_main,
        "export": export_main,
        "reproduce": reproduce_main,
        "bench": bench_main,
    },
)


def main(argv: Sequence[str] | None = None) -> int:
    """``tinymim`` entry point: the paperlab CLI, plus ``train --chain`` (sequential distillation, ``chain.py``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["train"]:
        try:
            chain, rest = split_chain_args(args[1:])
            if chain is not None:
                return run_chain(lambda step: _main(["train", *step]), chain, rest)
        except ValueError as err:
            print(f"tinymim train --chain: {err}", file=sys.stderr)
            return 2
    return _main(args)
