"""The command line every package gets: ``<pkg> train | evaluate | reproduce | <package verbs>``.

A package's ``cli.py`` declares its verbs and nothing heavier::

    from paperlab_core.cli import EVALUATE, TRAIN, build_cli
    from paperlab_core.verbs import REPRODUCE_OPTIONS, Verb

    main = build_cli(
        "tinymim",
        model="tinymim.module:TinyMIMDistill",
        data="tinymim.data:TinyMIMDataModule",
        description="TinyMIM (CVPR 2023): ...",
        verbs=[TRAIN, EVALUATE, Verb("reproduce", "tinymim.reproduce:reproduce", "...", REPRODUCE_OPTIONS)],
    )

Importing it costs milliseconds: ``--help``, ``--version`` and ``VERB --help`` of package verbs never import torch
or Lightning. Lightning verbs (:class:`LightningVerb`) are LightningCLI runs (``--config``, ``--print_config``,
``--trainer.*``/``--model.*``/``--data.*``); ``--config`` takes a YAML file or a preset name from
``<pkg>/configs/`` and the ``default`` preset is always applied first. Every failure a user can cause is one line,
``<cli>: error: ...``, and a non-zero exit; ``--debug`` (or ``PAPERLAB_DEBUG=1``) adds the traceback.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import os
import platform
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlab_core.errors import ConfigError, MissingFileError, UsageError, debug_enabled, guarded
from paperlab_core.verbs import Verb, run_verb


@dataclass(frozen=True)
class LightningVerb:
    """A verb run by Lightning: ``stages`` are Trainer methods (fit, test, validate, predict) run in order.

    ``model``/``data`` override the package's classes (``"module:Class"``); ``base_preset`` is applied first;
    ``args`` are fixed flags applied after the user's (they define the verb, so they win); ``renames`` maps verb-specific flags onto config keys
    (``{"--finetuned": "--model.init_ckpt"}``); ``needs_ckpt`` requires ``--ckpt``; ``restores_config`` takes the
    model and data configuration (and classes) stored in that checkpoint.
    """

    name: str
    help: str
    stages: tuple[str, ...] = ("fit",)
    model: str | None = None
    data: str | None = None
    base_preset: str = "default"
    args: tuple[str, ...] = ()
    renames: Mapping[str, str] = field(default_factory=dict)
    needs_ckpt: bool = False
    restores_config: bool = False


TRAIN = LightningVerb(
    "train", "train on the configured data (Lightning fit); no arguments runs the embedded default"
)
EVALUATE = LightningVerb(
    "evaluate",
    "the paper's metrics on the test protocol for a checkpoint: --ckpt PATH (its config is restored)",
    stages=("test",),
    needs_ckpt=True,
    restores_config=True,
)
VALIDATE = LightningVerb(
    "validate", "the validation loop for a checkpoint: --ckpt PATH", stages=("validate",), needs_ckpt=True,
    restores_config=True,
)  # fmt: skip
PREDICT = LightningVerb(
    "predict", "predictions for a checkpoint (--ckpt PATH), saved as predictions.pt", stages=("predict",),
    needs_ckpt=True, restores_config=True,
)  # fmt: skip

NOISY_WARNINGS = (
    r".*does not have many workers.*",
    r".*args parameter is intended to run from within Python.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*The dirpath has changed from.*",
)


@dataclass(frozen=True)
class PackageSpec:
    """What :func:`build_cli` knows about a package (passed on to the Lightning runner)."""

    package: str
    prog: str
    version: str
    description: str
    model: str | None
    data: str | None
    verbs: tuple[Verb | LightningVerb, ...]
    trainer_defaults: Mapping[str, Any]
    seed: int | bool
    cli_class: str | None
    max_devices: int | None = None
    cli_flags: tuple[str, ...] = ()

    def model_classes(self) -> set[str]:
        found = {self.model} | {v.model for v in self.verbs if isinstance(v, LightningVerb)}
        return {c for c in found if c}

    def data_classes(self) -> set[str]:
        found = {self.data} | {v.data for v in self.verbs if isinstance(v, LightningVerb)}
        return {c for c in found if c}


# --------------------------------------------------------------------------------------------- presets
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
    raise UsageError(f"--config {value!r} is neither a file nor a preset (presets: {presets})")


def flag_value(args: Sequence[str], *names: str) -> str | None:
    """The last value given to any of ``names`` (``--x V`` or ``--x=V``), or ``None``."""
    value = None
    for index, arg in enumerate(args):
        for name in names:
            if arg == name and index + 1 < len(args):
                value = args[index + 1]
            elif arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
    return value


def drop_flag(args: Sequence[str], name: str) -> list[str]:
    """``args`` without ``name V`` / ``name=V``."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == name:
            skip = True
            continue
        if arg.startswith(name + "="):
            continue
        out.append(arg)
    return out


def expand_config_args(
    args: Sequence[str], package: str, base_preset: str = "default", renames: Mapping[str, str] | None = None
) -> list[str]:
    """Resolve preset names in ``--config``, apply flag renames, and put the base preset (if any) first."""
    renames = {"--ckpt": "--ckpt_path", **(renames or {})}
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in {"-c", "--config"}:
            if index + 1 >= len(args):
                raise UsageError("--config needs a value (a YAML file or a preset name)")
            out += ["--config", resolve_config(args[index + 1], package)]
            index += 2
            continue
        if arg.startswith("--config="):
            arg = "--config=" + resolve_config(arg.split("=", 1)[1], package)
        else:
            name, eq, value = arg.partition("=")
            if name in renames:
                arg = renames[name] + (eq + value if eq else "")
        out.append(arg)
        index += 1
    folder = preset_dir(package)
    base = folder / f"{base_preset}.yaml" if folder and base_preset else None
    if base is not None and base.is_file():
        out = ["--config", str(base), *out]
    return out


# --------------------------------------------------------------------------------------------- entry point
def _dist_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def build_cli(
    package: str,
    *,
    model: str | None = None,
    data: str | None = None,
    description: str = "",
    verbs: Sequence[Verb | LightningVerb] = (TRAIN, EVALUATE),
    trainer_defaults: Mapping[str, Any] | None = None,
    seed: int | bool = 0,
    cli_class: str | None = None,
    version: str | None = None,
    prog: str | None = None,
    max_devices: int | None = None,
    cli_flags: Sequence[str] = (),
) -> Callable[[Sequence[str] | None], int]:
    """Return the ``main(argv=None) -> int`` entry point of a package's command line.

    ``model``/``data``: ``"module:Class"`` of the LightningModule and LightningDataModule; ``cli_class``: an
    optional ``"module:Class"`` subclass of :class:`paperlab_core.lightning.PaperCLI`. The version defaults to
    the installed distribution's metadata. ``max_devices``: the most devices one run can use (1 for full-batch
    methods that cannot be split over DDP ranks); ``auto`` is capped to it and more is a one-line error.
    ``cli_flags``: top-level flags that ``cli_class`` adds to the parser (``--config``, ``--trainer.*``,
    ``--model.*``, ``--data.*`` and the paperlab flags are always known; any other is rejected before Lightning
    is imported).
    """
    prog = prog or package.replace("_", "-")
    names = [v.name for v in verbs]
    if len(set(names)) != len(names):
        raise ValueError(f"{package}: duplicate verb names in {names}")
    spec = PackageSpec(
        package, prog, version or _dist_version(prog), description, model, data, tuple(verbs),
        dict(trainer_defaults or {}), seed, cli_class, max_devices, tuple(cli_flags),
    )  # fmt: skip
    by_name = {v.name: v for v in verbs}

    def usage() -> str:
        width = max(len(n) for n in by_name)
        lines = [f"usage: {prog} <command> [options]", ""]
        if description:
            lines += [description, ""]
        lines.append("commands:")
        lines += [f"  {name.ljust(width)}  {v.help}" for name, v in by_name.items()]
        presets = ", ".join(list_presets(package))
        from paperlab_core.logging import runs_root

        lines += [
            "",
            f"presets (--config NAME, applied on top of 'default'): {presets or 'none'}",
            f"`{prog} <command> --help` lists a command's options; --debug shows tracebacks.",
            f"runs go to {runs_root()}/{package}/<timestamp>-<name>/ (override with $PAPERLAB_RUNS)",
        ]
        return "\n".join(lines)

    def dispatch(verb_name: str, rest: list[str]) -> int:
        verb = by_name[verb_name]
        if isinstance(verb, LightningVerb):
            from paperlab_core.lightning_verbs import run_lightning_verb

            return run_lightning_verb(spec, verb, rest)
        return run_verb(package, spec.version, prog, verb, rest)

    def main(argv: Sequence[str] | None = None) -> int:
        raw = list(sys.argv[1:] if argv is None else argv)
        debug = debug_enabled(raw)
        args = [a for a in raw if a != "--debug"]
        if not args or args[0] in {"-h", "--help", "help"}:
            print(usage())
            return 0 if args else 2
        if args[0] in {"-V", "--version", "version"}:
            print(
                f"{prog} {spec.version} (paperlab-core {_dist_version('paperlab-core')}, "
                f"torch {_dist_version('torch')}, python {platform.python_version()})"
            )
            return 0
        verb_name, rest = args[0], args[1:]
        if verb_name not in by_name:
            print(
                f"{prog}: error: unknown command {verb_name!r} (commands: {', '.join(by_name)}; see `{prog} --help`)",
                file=sys.stderr,
            )
            return 2
        if debug:
            os.environ["PAPERLAB_DEBUG"] = "1"  # DDP workers re-run the command line without --debug
        with warnings.catch_warnings():
            if not debug:
                for pattern in NOISY_WARNINGS:
                    warnings.filterwarnings("ignore", message=pattern)
                warnings.filterwarnings("ignore", category=FutureWarning)
                warnings.filterwarnings("ignore", category=DeprecationWarning)
            return guarded(prog, lambda: dispatch(verb_name, rest), raw)

    main.spec = spec  # type: ignore[attr-defined]
    return main


__all__ = [
    "EVALUATE",
    "PREDICT",
    "TRAIN",
    "VALIDATE",
    "ConfigError",
    "LightningVerb",
    "MissingFileError",
    "PackageSpec",
    "build_cli",
    "expand_config_args",
    "list_presets",
    "preset_dir",
    "resolve_config",
]
