"""LightningCLI with paperlab's run folders, environment line, atomic checkpoints, metrics.json and a checkpoint
that carries its own configuration. Imported only when a Lightning verb runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentError
from pytorch_lightning import Callback, LightningDataModule, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.plugins.io import TorchCheckpointIO

from paperlab_core.cli import LightningVerb, PackageSpec
from paperlab_core.errors import ConfigError, MissingFileError, UsageError, one_line
from paperlab_core.logging import (
    RUN_DIR_ENV,
    build_loggers,
    current_run_dir,
    log,
    make_run_dir,
    progress_bar_callback,
    quiet_lightning_info,
    save_torch_atomic,
    write_metrics,
)
from paperlab_core.runtime import (
    configure_tf32,
    environment,
    lightning_accelerator,
    print_environment,
    resolve_accelerator,
    select_precision,
    set_threads,
)
from paperlab_core.verbs import resolve_target


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint IO that writes to a temporary file and renames it, so a crash never truncates a checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not support storage_options")
        save_torch_atomic(checkpoint, path)


def data_fingerprint(datamodule: Any, data_config: Any) -> str:
    """sha256 (16 hex) of the data configuration and, when the datamodule defines it, ``data_fingerprint()``."""
    digest = hashlib.sha256(json.dumps(data_config, sort_keys=True, default=str).encode())
    custom = getattr(datamodule, "data_fingerprint", None)
    if callable(custom):
        digest.update(str(custom()).encode())
    return digest.hexdigest()[:16]


class ConfigInCheckpoint(Callback):
    """Stores the model/data configuration and classes in every checkpoint (``checkpoint["paperlab"]``) and, when
    evaluating, warns if the data differs from the data the checkpoint was trained on.

    A LightningModule may define ``checkpoint_config(self, config: dict) -> dict`` to store what it resolved
    instead of what the command line said (e.g. an architecture read from an init file).
    """

    def __init__(self, meta: dict[str, Any], expected_fingerprint: str | None = None) -> None:
        self.meta = meta
        self.expected = expected_fingerprint
        self.warned = False

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        import copy

        meta = copy.deepcopy(self.meta)
        hook = getattr(pl_module, "checkpoint_config", None)
        if callable(hook):  # the module may replace what the command line said by what it resolved
            meta["config"] = hook(meta["config"])
        checkpoint["paperlab"] = {
            **meta,
            "data_fingerprint": data_fingerprint(trainer.datamodule, self.meta["config"].get("data")),
        }

    def _compare(self, trainer: Trainer) -> None:
        if self.expected is None or self.warned:
            return
        current = data_fingerprint(trainer.datamodule, self.meta["config"].get("data"))
        if current != self.expected:
            log(
                f"warning: the data differs from the data this checkpoint was trained on (fingerprint {current} "
                f"vs {self.expected}); numbers are not comparable to the training run's"
            )
        self.warned = True

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._compare(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != "fit":
            self._compare(trainer)

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._compare(trainer)


class FastDevRunCheckpoint(Callback):
    """``fast_dev_run`` disables ModelCheckpoint; this still writes ``checkpoints/last.ckpt`` so the smoke run of
    ``train`` can be followed by ``evaluate --ckpt``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run and not trainer.interrupted:
            trainer.save_checkpoint(self.path, weights_only=False)


class MetricsJsonCallback(Callback):
    """Keeps ``<run_dir>/metrics.json`` up to date (atomically) after validation, fit and test."""

    def __init__(self, run_dir: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.header = header
        self.started: dict[str, float] = {}  # stage -> perf_counter() at its start, for ``wall_s``

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
        if stage in self.started:  # seconds since the stage started (a resumed fit counts from its restart)
            record["wall_s"] = round(time.perf_counter() - self.started[stage], 3)
        record.update(extra or {})
        write_metrics(self.run_dir, {**self.header, stage: record})

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started["fit"] = time.perf_counter()

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.started["test"] = time.perf_counter()

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "validate":
            self.started.setdefault("validate", time.perf_counter())

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

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._write(trainer, "validate")


class PaperCLI(LightningCLI):
    """LightningCLI with paperlab's run folder, loggers, atomic checkpoints, metrics.json and config-in-checkpoint.

    Packages may subclass it (``build_cli(..., cli_class="pkg.cli_lightning:MyCLI")``) to link arguments.
    """

    spec: PackageSpec
    verb: LightningVerb
    model_target: str = ""
    data_target: str = ""
    expected_fingerprint: str | None = None

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="name appended to the run folder runs/<pkg>/<timestamp>-<name>/")  # fmt: skip
        parser.add_argument("--threads", type=int | None, default=None,
                            help="CPU threads for torch (default: $PAPERLAB_THREADS, else torch's choice)")  # fmt: skip
        parser.add_argument("--ckpt_path", type=str | None, default=None,
                            help="checkpoint to load (--ckpt is the same); `last` resumes the latest run")  # fmt: skip
        if "fit" in self.verb.stages:
            parser.add_argument("--resume", type=str | None, default=None,
                                help="RUN_DIR: continue that run in its own folder from checkpoints/last.ckpt")  # fmt: skip

    def before_instantiate_classes(self) -> None:
        config = self.config
        threads = set_threads(config.get("threads"))
        requested = lightning_accelerator(config.get("trainer.accelerator"))
        accelerator = resolve_accelerator(requested) if requested is not None else "custom"
        if config.get("trainer.precision") is None:
            config.trainer.precision = select_precision(accelerator)
        self._cap_devices(config)
        configure_tf32(accelerator)
        root = config.get("data.root", None) if "data" in config else None
        if root is None and "data" in config:
            root = config.get("data.init_args.root", None)
        if root and not Path(str(root)).expanduser().is_dir():
            raise MissingFileError(
                "data root", root, "data.root must be an existing folder holding the dataset"
            )
        self.env = environment(
            accelerator, str(config.trainer.precision), threads, packages={self.spec.prog: self.spec.version}
        )
        print_environment(self.env)

    def _cap_devices(self, config: Any) -> None:
        """Apply the package's ``max_devices``: ``auto``/-1 become the cap, an explicit larger count is an error."""
        cap = self.spec.max_devices
        if cap is None:
            return
        devices = config.get("trainer.devices", "auto")
        if devices in ("auto", -1, "-1", None):
            config.trainer.devices = cap
            return
        if isinstance(devices, (list, tuple)):
            count = len(devices)
        elif isinstance(devices, str) and "," in devices:
            count = len([d for d in devices.split(",") if d.strip()])
        else:
            count = int(devices)
        if count > cap:
            raise ConfigError(
                f"trainer.devices={devices}: {self.spec.prog} runs on at most {cap} device(s) per run "
                "(full-batch training cannot be split over DDP ranks)"
            )

    def _run_dir(self) -> Path:
        existing = current_run_dir()
        if existing is not None:
            existing.mkdir(parents=True, exist_ok=True)
            return existing
        name = self.config.get("run_name") or ("run" if self.verb.name == "train" else self.verb.name)
        path = make_run_dir(self.spec.package, name, verb=self.verb.name)
        os.environ[RUN_DIR_ENV] = str(path)  # inherited by DDP worker processes
        return path

    def _stored_config(self) -> dict[str, Any]:
        import yaml

        dumped = yaml.safe_load(self.parser.dump(self.config, skip_none=False, skip_check=True))
        return {key: dumped.get(key) for key in ("model", "data") if key in dumped}

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = dict(self._get(self.config_init, "trainer", default={}) or {})
        run_dir = self._run_dir()
        self.run_dir = run_dir
        resuming = bool(self.config.get("ckpt_path")) and "fit" in self.verb.stages
        if resuming and (run_dir / "metrics.csv").is_file():  # CSVLogger would delete the earlier rows
            index = len(list(run_dir.glob("metrics.before-resume-*.csv"))) + 1
            (run_dir / "metrics.csv").rename(run_dir / f"metrics.before-resume-{index}.csv")
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
        command = shlex.join([self.spec.prog, self.verb.name, *sys.argv[2:]]) if len(sys.argv) > 1 else ""
        header = {
            "package": self.spec.package,
            "version": self.spec.version,
            "verb": self.verb.name,
            "command": command,
            "env": self.env,
        }
        meta = {
            "package": self.spec.package,
            "version": self.spec.version,
            "model_class": self.model_target,
            "data_class": self.data_target,
            "config": self._stored_config(),
        }
        callbacks += [
            MetricsJsonCallback(run_dir, header),
            ConfigInCheckpoint(meta, self.expected_fingerprint),
            FastDevRunCheckpoint(run_dir / "checkpoints" / "last.ckpt"),
        ]
        kwargs["callbacks"] = callbacks
        if not config.get("plugins"):
            kwargs["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)


def make_cli(
    spec: PackageSpec,
    verb: LightningVerb,
    args: list[str],
    model_target: str | None,
    data_target: str | None,
    expected_fingerprint: str | None = None,
) -> PaperCLI:
    """Build (and instantiate) the LightningCLI of ``verb``; parse errors become one-line usage errors."""
    if model_target is None:
        raise UsageError(f"{spec.prog} {verb.name}: this package declares no LightningModule")
    quiet_lightning_info()
    base = resolve_target(spec.cli_class) if spec.cli_class else PaperCLI
    attrs = {
        "spec": spec,
        "verb": verb,
        "model_target": model_target,
        "data_target": data_target or "",
        "expected_fingerprint": expected_fingerprint,
    }
    cli_cls = type(f"{spec.package.title().replace('_', '')}CLI", (base,), attrs)
    model_class = resolve_target(model_target)
    data_class: type[LightningDataModule] | None = resolve_target(data_target) if data_target else None
    try:
        return cli_cls(
            model_class,
            data_class,
            args=args,
            run=False,
            trainer_defaults=dict(spec.trainer_defaults),
            seed_everything_default=spec.seed,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={
                "prog": f"{spec.prog} {verb.name}",
                "description": verb.help,
                "exit_on_error": False,
            },
        )
    except ArgumentError as err:
        message = re.sub(r"<class '([\w.]+)'>", r"\1", one_line(str(err)))
        raise UsageError(f"{message} (see `{spec.prog} {verb.name} --help`)") from None


def run_stages(cli: PaperCLI, verb: LightningVerb, ckpt: str | None) -> int:
    """Run the verb's Trainer methods in order; the checkpoint is loaded by the first."""
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    for index, stage in enumerate(verb.stages):
        result = getattr(trainer, stage)(model, datamodule=data, ckpt_path=ckpt if index == 0 else None)
        if stage == "predict" and result is not None and trainer.is_global_zero:
            save_torch_atomic(result, cli.run_dir / "predictions.pt")
    if trainer.is_global_zero:
        log(f"{cli.spec.prog} {verb.name}: run folder {cli.run_dir}")
    return 0
