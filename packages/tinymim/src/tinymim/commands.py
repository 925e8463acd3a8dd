"""Package verbs besides ``train``: ``finetune``, ``evaluate``, ``export`` and ``bench``."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import torch

from paperlab_core.cli import RUN_DIR_ENV, PaperCLI, resolve_config
from paperlab_core.logging import log, save_torch_atomic, write_metrics
from paperlab_core.runtime import select_precision
from tinymim import __version__
from tinymim.data import TinyMIMDataModule
from tinymim.module import TinyMIMFinetune, load_student_state


class FinetuneCLI(PaperCLI):
    package = "tinymim"
    package_version = __version__


def _finetune_args(argv: list[str]) -> list[str]:
    """``--config`` presets resolved, ``finetune-default`` applied first, ``--ckpt`` mapped to ``--model.init``."""
    out = ["--config", resolve_config("finetune-default", "tinymim")]
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in {"--config", "-c"} and index + 1 < len(argv):
            out += ["--config", resolve_config(argv[index + 1], "tinymim")]
            index += 2
            continue
        if arg.startswith("--config="):
            arg = "--config=" + resolve_config(arg.split("=", 1)[1], "tinymim")
        elif arg == "--ckpt":
            arg = "--model.init"
        elif arg.startswith("--ckpt="):
            arg = "--model.init=" + arg.split("=", 1)[1]
        out.append(arg)
        index += 1
    return out


def finetune_main(argv: list[str]) -> int:
    """Supervised fine-tuning of a distilled (or MAE, or scratch with --ckpt none) student; tests at the end."""
    import os

    owns = RUN_DIR_ENV not in os.environ
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*args parameter is intended to run from within Python.*"
            )
            cli = FinetuneCLI(
                TinyMIMFinetune,
                TinyMIMDataModule,
                args=_finetune_args(argv),
                run=False,
                trainer_defaults={"precision": select_precision()},
                seed_everything_default=0,
                auto_configure_optimizers=False,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": "tinymim finetune", "description": finetune_main.__doc__},
            )
        trainer, model, data = cli.trainer, cli.model, cli.datamodule
        trainer.fit(model, datamodule=data)
        results = trainer.test(model, datamodule=data, ckpt_path=None)
        if trainer.is_global_zero:
            path = save_torch_atomic(
                {
                    "model": model.model.state_dict(),
                    "meta": {"arch": model.model_config.to_dict(), "init": model.hparams.init},
                },
                cli.run_dir / "finetuned.pth",
            )
            write_metrics(
                cli.run_dir,
                {"finetune_test": results[0] if results else {}, "finetuned_checkpoint": str(path)},
            )
            log(f"tinymim finetune: run directory {cli.run_dir}")
        return 0
    finally:
        if owns:
            os.environ.pop(RUN_DIR_ENV, None)


def evaluate_main(argv: list[str]) -> int:
    """Top-1/top-5 of a fine-tuned checkpoint (--ckpt PATH.ckpt) on the test split, or k-NN of a distilled one."""
    from pytorch_lightning import Trainer

    from paperlab_core.logging import make_run_dir

    parser = argparse.ArgumentParser(prog="tinymim evaluate", description=evaluate_main.__doc__)
    parser.add_argument(
        "--ckpt", required=True, help="a `tinymim finetune` .ckpt, or a distilled student for knn"
    )
    parser.add_argument("--protocol", choices=["finetuned", "knn"], default="finetuned")
    parser.add_argument("--dataset", default="embedded", help="dataset key for the knn protocol")
    parser.add_argument("--root", default=None)
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args(argv)
    if not Path(args.ckpt).is_file():
        raise SystemExit(f"tinymim evaluate: checkpoint {args.ckpt} does not exist")
    run_dir = make_run_dir("tinymim", f"evaluate-{args.protocol}")
    if args.protocol == "knn":
        from tinymim.evaluate import knn_accuracy

        state, config, _ = load_student_state(args.ckpt)
        acc = knn_accuracy(state, config, args.dataset, args.root, args.k)
        write_metrics(run_dir, {"test": {"knn_acc1": acc, "k": args.k, "dataset": args.dataset}})
        print(f"k-NN top-1 ({args.dataset}, k={args.k}): {acc:.4f}")
        return 0
    blob = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    if "datamodule_hyper_parameters" not in blob:
        raise SystemExit(f"tinymim evaluate: {args.ckpt} is not a `tinymim finetune` Lightning checkpoint")
    hparams = {k: v for k, v in blob["hyper_parameters"].items() if not k.startswith("_")}
    model = TinyMIMFinetune(**{**hparams, "init": None})
    model.load_state_dict(blob["state_dict"])
    data_hp = {k: v for k, v in blob["datamodule_hyper_parameters"].items() if not k.startswith("_")}
    data = TinyMIMDataModule(**data_hp)
    trainer = Trainer(
        accelerator="auto", devices=1, logger=False, default_root_dir=str(run_dir), enable_progress_bar=False
    )
    results = trainer.test(model, datamodule=data)
    write_metrics(run_dir, {"test": results[0] if results else {}, "checkpoint": args.ckpt})
    print(f"tinymim evaluate: {results[0] if results else {}} -> {run_dir / 'metrics.json'}")
    return 0


def export_state(path: str | Path, pool: str = "avg") -> dict[str, Any]:
    """A timm-loadable ``{"model": state, "meta": ...}`` from a distilled student (``norm.*`` dropped for avg)."""
    state, config, meta = load_student_state(path)
    if pool not in {"avg", "token"}:
        raise ValueError(f"--pool must be avg or token, got {pool!r}")
    if pool == "avg":
        state = {k: v for k, v in state.items() if not k.startswith("norm.")}
    export_meta = {
        "arch": config.to_dict(),
        "block_heads": meta.get("block_heads", config.block_heads()),
        "img_size": config.img_size,
        "patch_size": config.patch_size,
        "pool": pool,
        "source": str(path),
        "timm": "timm.create_model('vit_*', img_size=..., patch_size=..., global_pool='avg', fc_norm=True, "
        "num_classes=K, pretrained=True, pretrained_cfg_overlay=dict(file=FILE))",
    }
    return {"model": {k: v.contiguous() for k, v in state.items()}, "meta": export_meta}


def export_main(argv: list[str]) -> int:
    """Write a distilled student as a timm-loadable checkpoint (--ckpt PATH --out FILE [--pool avg|token])."""
    parser = argparse.ArgumentParser(prog="tinymim export", description=export_main.__doc__)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pool", choices=["avg", "token"], default="avg")
    args = parser.parse_args(argv)
    blob = export_state(args.ckpt, args.pool)
    save_torch_atomic(blob, args.out)
    arch = blob["meta"]["arch"]
    print(
        f"exported {len(blob['model'])} tensors to {args.out}; load with timm.create_model('vit_...', "
        f"img_size={arch['img_size']}, patch_size={arch['patch_size']}, embed_dim={arch['embed_dim']}, "
        f"depth={arch['depth']}, global_pool='{args.pool}', fc_norm={args.pool == 'avg'}, num_classes=K, "
        f"pretrained=True, pretrained_cfg_overlay=dict(file='{args.out}'))"
    )
    return 0


def bench_main(argv: list[str]) -> int:
    """Benchmark: `tinymim bench distill` times the fast distillation step against the reference."""
    from tinymim.bench import bench_cli

    return bench_cli(argv)
