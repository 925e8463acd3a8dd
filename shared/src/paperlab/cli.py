"""LightningCLI builder: every package gets the same verbs and run-directory conventions.

A package's ``cli.py`` is typically::

    from paperlab.cli import build_cli
    main = build_cli("tinymim", TinyMIMModule, TinyMIMDataModule, version=__version__,
                     commands={"reproduce": reproduce_main})

and its console script points at ``tinymim.cli:main``. Verbs:

* ``train`` (``Trainer.fit``), ``evaluate`` (``Trainer.test``, needs ``--ckpt``), ``validate`` and ``predict``,
  all configured with jsonargparse (``--config``, ``--print_config``, ``--trainer.*``, ``--model.*``, ``--data.*``);
* package commands registered with ``commands={"name": function(argv) -> int | None}``;
* ``--help`` and ``--version`` at the top level.

``--config`` takes a YAML path or the name of a preset shipped in ``<package>/configs/<name>.yaml``. The
``default`` preset is always applied first, so presets only need to hold what differs from it and
``<pkg> train`` with no arguments runs the embedded default.
"""

from __future__ import annotations

import importlib.resources
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningDataModule, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.plugins.io import TorchCheckpointIO

import paperlab
from paperlab.logging import (
    build_loggers,
    log,
    make_run_dir,
    progress_bar_callback,
    runs_root,
    save_torch_atomic,
    write_metrics,
)
from paperlab.runtime import enable_tf32, print_environment_report, select_precision, set_threads

RUN_DIR_ENV = "PAPERLAB_RUN_DIR"
LIGHTNING_VERBS = {"train": "fit", "evaluate": "test", "validate": "validate", "predict": "predict"}
VERB_HELP = {
    "train": "train on the configured data (Lightning fit); no arguments runs the embedded default",
    "evaluate": "the paper's metrics on the test protocol (--ckpt PATH), written to metrics.json",
    "validate": "run the validation loop (--ckpt PATH optional)",
    "predict": "run prediction (--ckpt PATH) and save predictions.pt in the run directory",
}

CommandFn = Callable[[list[str]], "int | None"]


def current_run_dir() -> Path | None:
    """The run directory of the run in progress (set by the CLI), or ``None`` outside a CLI run."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that writes to a temporary file and renames it, so a crash never truncates a checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        save_torch_atomic(checkpoint, path)


class MetricsJsonCallback(Callback):
    """Keeps ``<run_dir>/metrics.json`` up to date (atomically) after validation, fit and test."""

    def __init__(self, run_dir: str | os.PathLike[str], package: str, version: str) -> None:
        self.run_dir = Path(run_dir)
        self.header = {"package": package, "version": version}

    @staticmethod
    def _scalars(trainer: Trainer) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in trainer.callback_metrics.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                out[key] = float(value.detach().float().cpu())
            elif isinstance(value, (int, float)):
                out[key] = float(value)
        return out

    def _write(self, trainer: Trainer, stage: str, extra: dict[str, Any] | None = None) -> None:
        if not trainer.is_global_zero:
            return
        record = {
            **self._scalars(trainer),
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
        }
        record.update(extra or {})
        write_metrics(self.run_dir, {**self.header, stage: record})

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            self._write(trainer, "fit")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        extra: dict[str, Any] = {}
        ckpt = trainer.checkpoint_callback
        if isinstance(ckpt, ModelCheckpoint):
            extra = {"best_model_path": ckpt.best_model_path, "last_model_path": ckpt.last_model_path}
        self._write(trainer, "fit", extra)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "test")


class PaperCLI(LightningCLI):
    """LightningCLI with paperlab's run directory, loggers, atomic checkpoints and metrics.json."""

    package: str = "paperlab"
    package_version: str = paperlab.__version__

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="name appended to the run directory runs/<pkg>/<timestamp>-<name>/",
        )
        parser.add_argument(
            "--threads",
            type=int | None,
            default=None,
            help="CPU threads for torch (default: torch's choice or $PAPERLAB_THREADS)",
        )
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="checkpoint to resume (train) or to load (evaluate/validate/predict)",
        )

    def before_instantiate_classes(self) -> None:
        set_threads(self.config.get("threads"))
        enable_tf32()
        print_environment_report()

    def _run_dir(self) -> Path:
        existing = current_run_dir()
        if existing is not None:
            existing.mkdir(parents=True, exist_ok=True)
            return existing
        name = self.config.get("run_name") or "run"
        if os.environ.get("SLURM_JOB_ID"):
            # every SLURM task runs this code: agree on one folder without communication
            path = runs_root() / self.package / f"slurm-{os.environ['SLURM_JOB_ID']}-{name}"
            path.mkdir(parents=True, exist_ok=True)
        else:
            path = make_run_dir(self.package, name)
        os.environ[RUN_DIR_ENV] = str(path)  # inherited by DDP worker processes
        return path

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = dict(self._get(self.config_init, "trainer", default={}) or {})
        run_dir = self._run_dir()
        self.run_dir = run_dir
        kwargs.setdefault("default_root_dir", str(run_dir))
        if config.get("logger") in (None, True):
            kwargs["logger"] = build_loggers(run_dir)
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(cb, ProgressBar) for cb in callbacks
        ):
            callbacks.append(progress_bar_callback())
        if config.get("enable_checkpointing") is not False and not any(
            isinstance(cb, ModelCheckpoint) for cb in callbacks
        ):
            callbacks.append(ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True))
        callbacks.append(MetricsJsonCallback(run_dir, self.package, self.package_version))
        kwargs["callbacks"] = callbacks
        if not config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)


@dataclass(frozen=True)
class Command:
    """A package-specific verb."""

    func: CommandFn
    help: str


def preset_dir(package: str) -> Path | None:
    """Folder of the YAML presets shipped in ``<package>/configs``, if any."""
    try:
        folder = importlib.resources.files(package) / "configs"
    except ModuleNotFoundError:
        return None
    path = Path(str(folder))
    return path if path.is_dir() else None


def list_presets(package: str) -> list[str]:
    folder = preset_dir(package)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder else []


def resolve_config(value: str, package: str) -> str:
    """A ``--config`` value: an existing file, or the name of a preset shipped with the package."""
    if Path(value).is_file():
        return value
    folder = preset_dir(package)
    if folder is not None:
        for candidate in (folder / value, folder / f"{value}.yaml"):
            if candidate.is_file():
                return str(candidate)
    presets = ", ".join(list_presets(package)) or "none"
    raise SystemExit(f"{package}: --config {value!r} is neither a file nor a preset (presets: {presets})")


def expand_config_args(args: Sequence[str], package: str) -> list[str]:
    """Resolve preset names in ``--config`` and put the ``default`` preset first."""
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in {"-c", "--config"} and index + 1 < len(args):
            out += ["--config", resolve_config(args[index + 1], package)]
            index += 2
            continue
        if arg.startswith("--config="):
            out.append("--config=" + resolve_config(arg.split("=", 1)[1], package))
        elif arg == "--ckpt":
            arg = "--ckpt_path"
        elif arg.startswith("--ckpt="):
            arg = "--ckpt_path=" + arg.split("=", 1)[1]
        out.append(arg)
        index += 1
    folder = preset_dir(package)
    default = folder / "default.yaml" if folder else None
    if default is not None and default.is_file():
        out = ["--config", str(default), *out]
    return out


def _first_doc_line(func: Callable[..., Any]) -> str:
    doc = inspect.getdoc(func) or ""
    return doc.splitlines()[0] if doc else ""


def build_cli(
    package: str,
    model_class: type[LightningModule] | Callable[..., LightningModule],
    datamodule_class: type[LightningDataModule] | Callable[..., LightningDataModule] | None,
    *,
    version: str,
    description: str = "",
    commands: dict[str, CommandFn | Command] | None = None,
    trainer_defaults: dict[str, Any] | None = None,
    seed: int | bool = 0,
    cli_class: type[PaperCLI] = PaperCLI,
    prog: str | None = None,
) -> Callable[[Sequence[str] | None], int]:
    """Return the ``main(argv=None)`` entry point of a package's command line."""
    prog = prog or package.replace("_", "-")
    extra: dict[str, Command] = {}
    for name, value in (commands or {}).items():
        extra[name] = value if isinstance(value, Command) else Command(value, _first_doc_line(value))
    cli_cls = type(f"{package.title()}CLI", (cli_class,), {"package": package, "package_version": version})

    def usage() -> str:
        verbs = {
            **{v: VERB_HELP[v] for v in LIGHTNING_VERBS if v not in extra},
            **{k: c.help for k, c in extra.items()},
        }
        width = max(len(v) for v in verbs)
        lines = [f"usage: {prog} <command> [options]", ""]
        if description:
            lines += [description, ""]
        lines.append("commands:")
        lines += [f"  {verb.ljust(width)}  {text}" for verb, text in verbs.items()]
        presets = ", ".join(list_presets(package))
        lines += [
            "",
            f"presets (--config NAME, applied on top of 'default'): {presets or 'none'}",
            f"`{prog} <command> --help` lists every option; `--print_config` prints the resolved config.",
            f"runs go to {runs_root()}/{package}/<timestamp>-<name>/ (override with $PAPERLAB_RUNS)",
        ]
        return "\n".join(lines)

    def make_cli(verb: str, args: list[str]) -> PaperCLI:
        defaults = {"precision": select_precision(), **(trainer_defaults or {})}
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=".*args parameter is intended to run from within Python.*"
            )
            return cli_cls(
                model_class,
                datamodule_class,
                args=expand_config_args(args, package),
                run=False,
                trainer_defaults=defaults,
                seed_everything_default=seed,
                auto_configure_optimizers=False,
                save_config_kwargs={"overwrite": True},
                parser_kwargs={"prog": f"{prog} {verb}", "description": VERB_HELP[verb]},
            )

    def run_lightning(verb: str, args: list[str]) -> int:
        cli = make_cli(verb, args)
        trainer, model, data = cli.trainer, cli.model, cli.datamodule
        ckpt = cli.config.get("ckpt_path")
        if verb == "evaluate" and not ckpt:
            raise SystemExit(
                f"{prog} evaluate: --ckpt PATH is required (a checkpoint written by `{prog} train`)"
            )
        if ckpt and not Path(ckpt).is_file() and ckpt not in {"last", "best", "hpc"}:
            raise SystemExit(f"{prog} {verb}: checkpoint {ckpt} does not exist")
        method = getattr(trainer, LIGHTNING_VERBS[verb])
        result = method(model, datamodule=data, ckpt_path=ckpt)
        if verb == "predict" and result is not None and trainer.is_global_zero:
            save_torch_atomic(result, cli.run_dir / "predictions.pt")
        if trainer.is_global_zero:
            log(f"{prog} {verb}: run directory {cli.run_dir}")
        return 0

    def main(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        if not args or args[0] in {"-h", "--help", "help"}:
            print(usage())
            return 0 if args else 2
        if args[0] in {"-V", "--version", "version"}:
            print(f"{prog} {version} (paperlab {paperlab.__version__}, torch {torch.__version__})")
            return 0
        verb, rest = args[0], args[1:]
        owns_run_dir = RUN_DIR_ENV not in os.environ
        try:
            if verb in extra:
                return int(extra[verb].func(rest) or 0)
            if verb in LIGHTNING_VERBS:
                return run_lightning(verb, rest)
        finally:
            if owns_run_dir:
                os.environ.pop(RUN_DIR_ENV, None)
        print(f"{prog}: unknown command {verb!r}\n\n{usage()}", file=sys.stderr)
        return 2

    return main
