"""Command line: ``tinymim train | finetune | pretrain-teacher | evaluate | export | reproduce | bench``."""

from __future__ import annotations

from paperlab.cli import build_cli
from tinymim import __version__
from tinymim.commands import bench_main, evaluate_main, export_main, finetune_main
from tinymim.data import TinyMIMDataModule
from tinymim.module import TinyMIMDistill
from tinymim.pretrain import pretrain_main
from tinymim.reproduce import reproduce_main

main = build_cli(
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
