"""The verb helper: package verbs (``reproduce``, ``attack``, ``regret``, ``explain``, ``bench`` ...) declared once.

A verb is a name, a target ``"package.module:function"`` and typed options. The declaration is cheap to import
(no torch), so ``<cli> VERB --help`` answers at once; the target module is imported only when the verb runs.
Running a verb pins the threads, resolves the device, prints the environment line, creates the run folder, writes
``config.yaml`` and ``metrics.json`` atomically and removes the folder again if the verb fails before writing a
result. The target is called as ``function(args, run)`` with the parsed :class:`argparse.Namespace` and a
:class:`Run`; a returned mapping is merged into ``metrics.json``, a returned int is the exit status.

Shared options (one spelling per concept across packages): :data:`SEED`, :data:`SEEDS`, :data:`THREADS`,
:data:`DEVICE`, :data:`OUT`, :data:`QUICK`, :data:`DATA_ROOT`, :data:`CKPT`, :data:`SHARD`, :data:`MERGE`.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from paperlab_core.errors import UsageError

_MISSING = object()


# --------------------------------------------------------------------------------------------- value types
def seed_list(text: str) -> list[int]:
    """``"0,1,2"`` → [0, 1, 2]; ``"0-4"`` → [0, 1, 2, 3, 4] (inclusive); ``"7"`` → [7]."""
    seeds: list[int] = []
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            first, _, last = part.partition("-")
            lo, hi = int(first), int(last or first)
            if lo < 0 or hi < lo:
                raise ValueError
            seeds.extend(range(lo, hi + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seeds as a comma list (0,1,2) or an inclusive range (0-4), got {text!r}"
        ) from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected at least one seed, got {text!r}")
    return list(dict.fromkeys(seeds))


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A strictly positive finite or infinite float (``--lr``, ``--fps``); NaN and ``0`` are rejected."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def existing_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file {text} does not exist")
    return path


def existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"folder {text} does not exist")
    return path


def existing_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def shard_spec(text: str) -> tuple[int, int]:
    """``"K/N"`` → (K, N) with 1 ≤ K ≤ N: the K-th of N slices of an experiment grid."""
    try:
        k_text, n_text = str(text).split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"expected K/N with 1 <= K <= N, got {text!r}")
    return k, n


def comma_list(choices: Sequence[str] | None = None) -> Callable[[str], list[str]]:
    """A parser for ``"a,b,c"``, each item checked against ``choices`` when given."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in str(text).split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected a comma list, got {text!r}")
        if choices is not None:
            unknown = [item for item in items if item not in choices]
            if unknown:
                raise argparse.ArgumentTypeError(
                    f"unknown {', '.join(map(repr, unknown))} (expected items of {', '.join(choices)})"
                )
        return items

    parse.__name__ = "comma_list"
    return parse


# --------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One declared option (or positional argument when ``flags`` holds a bare name)."""

    flags: tuple[str, ...]
    type: Callable[[str], Any] | None = str
    default: Any = None
    help: str = ""
    choices: tuple[Any, ...] | None = None
    required: bool = False
    flag: bool = False
    nargs: str | int | None = None
    metavar: str | None = None
    dest: str = ""

    def __post_init__(self) -> None:
        if not self.dest:
            long = next((f for f in self.flags if f.startswith("--")), self.flags[0])
            object.__setattr__(self, "dest", long.lstrip("-").replace(".", "_").replace("-", "_"))

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    def but(self, **changes: Any) -> Option:
        """A copy with some fields changed, e.g. ``SEEDS.but(default=[0, 1, 2])``."""
        return replace(self, **changes)

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        kwargs: dict[str, Any] = {"help": self.help}
        if self.flag:
            parser.add_argument(*self.flags, dest=self.dest, action="store_true", help=self.help)
            return
        if self.default is not _MISSING:
            kwargs["default"] = self.default
        if self.type is not None:
            kwargs["type"] = self.type
        for key in ("choices", "nargs", "metavar"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        if self.positional:
            if self.nargs is None and not self.required and self.default is not None:
                kwargs["nargs"] = "?"
            parser.add_argument(self.flags[0], **kwargs)
        else:
            parser.add_argument(*self.flags, dest=self.dest, required=self.required, **kwargs)


def option(
    *flags: str,
    type: Callable[[str], Any] | None = str,
    default: Any = None,
    help: str = "",
    choices: Sequence[Any] | None = None,
    required: bool = False,
    flag: bool = False,
    nargs: str | int | None = None,
    metavar: str | None = None,
    dest: str = "",
) -> Option:
    """Declare an option: ``option("--k", type=int, default=20, help="neighbours")``."""
    return Option(
        tuple(flags), type, default, help, tuple(choices) if choices is not None else None, required, flag,
        nargs, metavar, dest,
    )  # fmt: skip


SEED = option("--seed", type=int, default=0, help="random seed (default 0)")
SEEDS = option(
    "--seeds", type=seed_list, default=None, metavar="LIST",
    help="seeds: a comma list (0,1,2) or an inclusive range (0-4)",
)  # fmt: skip
THREADS = option(
    "--threads", type=positive_int, default=None, metavar="N",
    help="CPU threads for torch/OpenMP (default: $PAPERLAB_THREADS, else the libraries' choice)",
)  # fmt: skip
DEVICE = option(
    "--device", default="auto", choices=("auto", "cpu", "cuda", "gpu", "mps"),
    help="where tensors live: auto = cuda > mps > cpu (default auto)",
)  # fmt: skip
OUT = option(
    "--out", type=Path, default=None, metavar="DIR",
    help="output folder (default: a new run folder runs/<pkg>/<timestamp>-<verb>/)",
)  # fmt: skip
QUICK = option("--quick", flag=True, help="the smallest budget: the same code path in a fraction of the time")
DATA_ROOT = option(
    "--data.root", type=existing_dir, default=None, metavar="DIR",
    help="folder holding the dataset files (default: $PAPERLAB_DATA, else ~/.cache/paperlab/<pkg>)",
)  # fmt: skip
CKPT = option("--ckpt", type=existing_file, required=True, metavar="PATH", help="checkpoint file")
SHARD = option(
    "--shard", type=shard_spec, default=None, metavar="K/N",
    help="run only the K-th of N slices of the experiment grid and write its records (for SLURM arrays)",
)  # fmt: skip
MERGE = option(
    "--merge", type=existing_path, nargs="+", default=None, metavar="DIR|JSON",
    help="build the results table from the records in these folders (written by --shard runs) or results "
    "files (a committed results/*.json) and stop",
)  # fmt: skip

JOBS = option(
    "--jobs", type=positive_int, default=1, metavar="N",
    help="run the grid as N parallel processes (one --shard each, same --out; default 1); without --threads "
    "each gets cpu_count/N threads",
)  # fmt: skip

CELLS = option(
    "--cells", type=comma_list(), default=None, metavar="PATTERN,...",
    help="run (or merge) only the cells whose key starts with, or matches the shell pattern of, one of these",
)  # fmt: skip

SHARED_OPTIONS: dict[str, Option] = {
    o.dest: o for o in (SEED, SEEDS, THREADS, DEVICE, OUT, QUICK, DATA_ROOT, CKPT, SHARD, MERGE, CELLS, JOBS)
}
#: the options every ``reproduce`` verb takes (:mod:`paperlab_core.experiment` reads them); a package option
#: of the same name replaces the shared one
REPRODUCE_OPTIONS: tuple[Option, ...] = (QUICK, SEEDS, SHARD, MERGE, CELLS, JOBS, OUT, THREADS, DEVICE)


# --------------------------------------------------------------------------------------------- verbs
@dataclass(frozen=True)
class Verb:
    """A package verb: ``Verb("regret", "gec_rl.study:regret", "regret study ...", options=(...))``.

    ``run_dir``: create a run folder (``--out`` overrides it). ``uses_torch=False`` keeps torch out of numpy-only
    verbs (the environment line then reads torch's version from the package metadata). ``subverbs`` make a
    command group (``bench search``, ``bench attack``).
    """

    name: str
    target: str
    help: str
    options: tuple[Option, ...] = ()
    description: str = ""
    run_dir: bool = True
    uses_torch: bool = True
    subverbs: tuple[Verb, ...] = ()
    epilog: str = ""

    def option_dests(self) -> set[str]:
        return {o.dest for o in self.options}


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser(prog: str, verb: Verb) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=verb.description or verb.help,
        epilog=verb.epilog or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    chosen: dict[str, Option] = {}
    for opt in verb.options:  # a later option of the same name (a package's own) replaces a shared one
        chosen[opt.dest] = opt
    for opt in chosen.values():
        opt.add_to(parser)
    return parser


@dataclass
class Run:
    """What a verb's function gets besides its options: the run folder, the device and writers."""

    package: str
    version: str
    prog: str
    verb: str
    argv: list[str]
    dir: Path | None
    env: dict[str, Any]
    accelerator: str = "cpu"
    started: float = field(default_factory=time.time)

    @property
    def command(self) -> str:
        """The command line as typed (for records and README provenance)."""
        return shlex.join([self.prog, *self.verb.split(), *self.argv])

    @property
    def device(self) -> Any:
        """``torch.device`` of the resolved accelerator (imports torch)."""
        from paperlab_core.runtime import torch_device

        return torch_device(self.accelerator)

    def path(self, name: str) -> Path:
        if self.dir is None:
            raise RuntimeError(f"verb {self.verb!r} was declared without a run folder")
        return self.dir / name

    def write_json(self, name: str, data: Any) -> Path:
        from paperlab_core.logging import write_json_atomic

        return write_json_atomic(self.path(name), data)

    def write_text(self, name: str, text: str) -> Path:
        from paperlab_core.logging import write_text_atomic

        return write_text_atomic(self.path(name), text)

    def save_torch(self, name: str, obj: Any) -> Path:
        from paperlab_core.logging import save_torch_atomic

        return save_torch_atomic(obj, self.path(name))

    def write_metrics(self, data: Mapping[str, Any]) -> Path:
        from paperlab_core.logging import write_metrics

        return write_metrics(self.path(""), data)

    def log(self, message: str) -> None:
        from paperlab_core.logging import log

        log(message)


def resolve_target(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def run_verb(package: str, version: str, prog: str, verb: Verb, argv: list[str]) -> int:
    """Parse ``argv`` for ``verb`` and run it (see the module docstring)."""
    if verb.subverbs:
        names = {v.name: v for v in verb.subverbs}
        if not argv or argv[0] in {"-h", "--help"}:
            width = max(len(n) for n in names)
            print(
                f"usage: {prog} {verb.name} {{{','.join(names)}}} [options]\n\n{verb.description or verb.help}\n"
            )
            print("\n".join(f"  {n.ljust(width)}  {v.help}" for n, v in names.items()))
            return 0
        if argv[0] not in names:
            raise UsageError(
                f"unknown {prog} {verb.name} command {argv[0]!r} (expected one of {', '.join(names)})"
            )
        sub = names[argv[0]]
        return run_verb(package, version, prog, replace(sub, name=f"{verb.name} {sub.name}"), argv[1:])

    parser = build_parser(f"{prog} {verb.name}", verb)
    args = parser.parse_args(argv)  # --help prints and exits 0 here, before anything is imported
    return execute(package, version, prog, verb, args, argv)


def execute(
    package: str, version: str, prog: str, verb: Verb, args: argparse.Namespace, argv: list[str]
) -> int:
    import yaml

    from paperlab_core.logging import (
        discard_if_unused,
        log,
        make_run_dir,
        quiet_lightning_info,
        write_metrics,
        write_text_atomic,
    )
    from paperlab_core.runtime import (
        configure_tf32,
        environment,
        print_environment,
        resolve_accelerator,
        set_threads,
    )

    threads = set_threads(getattr(args, "threads", None), import_torch=verb.uses_torch)
    if verb.uses_torch:
        quiet_lightning_info()  # verbs that build their own Trainer
    accelerator = "cpu"  # a verb that declares no --device computes on the CPU
    if verb.uses_torch and "device" in verb.option_dests():
        accelerator = resolve_accelerator(args.device)
        configure_tf32(accelerator)
    env = environment(
        accelerator=accelerator, threads=threads, packages={prog: version}, uses_torch=verb.uses_torch
    )
    print_environment(env)

    out = getattr(args, "out", None) if "out" in verb.option_dests() else None
    created = False
    run_dir: Path | None = None
    if out is not None:
        run_dir = Path(out)
        created = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
    elif verb.run_dir:
        run_dir = make_run_dir(package, verb.name.replace(" ", "-"), verb=verb.name.replace(" ", "-"))
        created = True
    run = Run(package, version, prog, verb.name, list(argv), run_dir, env, accelerator)
    try:
        if run_dir is not None:
            options = {k: _plain(v) for k, v in vars(args).items()}
            write_text_atomic(run_dir / "config.yaml", yaml.safe_dump({"command": run.command, **options}))
        func = resolve_target(verb.target)
        result = func(args, run)
    except BaseException:
        if created:
            discard_if_unused(run_dir)
        raise
    if run_dir is not None:
        header = {
            "package": package,
            "version": version,
            "verb": verb.name,
            "command": run.command,
            "env": env,
        }
        record = dict(result) if isinstance(result, Mapping) else {}
        record["wall_s"] = round(time.time() - run.started, 3)
        write_metrics(run_dir, {**header, **record})
        log(f"{prog} {verb.name}: run folder {run_dir}")
    return int(result) if isinstance(result, int) and not isinstance(result, bool) else 0
