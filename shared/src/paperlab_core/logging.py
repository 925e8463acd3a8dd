"""Run folders (SLURM-aware), loggers, atomic result files (mode 0644) and progress bars."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import io
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

RUNS_ENV = "PAPERLAB_RUNS"
RUN_DIR_ENV = "PAPERLAB_RUN_DIR"
#: files the CLIs write when a run starts; a folder holding nothing else is removed when the run fails
BOOKKEEPING_FILES = frozenset({"config.yaml", "hparams.yaml", "metrics.csv"})


def _file_mode() -> int:
    """0666 minus the process umask (0644 with the usual umask 022), as ``open()`` would create files."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def runs_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where run directories live: ``root``, else ``$PAPERLAB_RUNS``, else ``./runs``."""
    return Path(root or os.environ.get(RUNS_ENV) or "runs")


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
    return slug or "run"


def slurm_run_name(verb: str, name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """``slurm-<job>[_<task>]-<step>-<verb>-<name>`` inside a SLURM job, else ``None``.

    The job, array task and step identify one launch; the ranks of a multi-task step (one DDP run) compute the
    same name and so share the folder, while two steps, two array tasks or two jobs never do.
    """
    env = os.environ if environ is None else environ
    job = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID")
    if not job:
        return None
    task = env.get("SLURM_ARRAY_TASK_ID")
    step = env.get("SLURM_STEP_ID", "batch")
    job_part = f"{job}_{task}" if task else job
    return _slug(f"slurm-{job_part}-{step}-{verb}-{name}")


def slurm_shared_step(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process is one of several tasks of one SLURM step (the ranks of one run)."""
    env = os.environ if environ is None else environ
    try:
        return int(env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or 1) > 1
    except ValueError:
        return False


def _make_unique(base: Path, stem: str) -> Path:
    candidate = base / stem
    suffix = 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = base / f"{stem}-{suffix}"


def make_run_dir(
    package: str, name: str = "run", root: str | os.PathLike[str] | None = None, verb: str | None = None
) -> Path:
    """Create a new run folder under ``<root>/<package>/`` and return it.

    Outside SLURM: ``<YYYYmmdd-HHMMSS>-<name>`` (a numeric suffix avoids collisions). Inside a SLURM job:
    :func:`slurm_run_name`; the tasks of one multi-task step share it (DDP ranks), a single-task step gets a
    suffix when the name is taken, so two runs never share a folder.
    """
    base = runs_root(root) / package
    base.mkdir(parents=True, exist_ok=True)
    slurm = slurm_run_name(verb or "run", name)
    if slurm is not None:
        if slurm_shared_step():
            path = base / slurm
            path.mkdir(exist_ok=True)
            return path
        return _make_unique(base, slurm)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return _make_unique(base, f"{stamp}-{_slug(name)}")


def current_run_dir() -> Path | None:
    """The folder of the run in progress (set by the CLI and inherited by DDP workers), or ``None``."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def holds_results(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds any file besides the start-of-run bookkeeping (config, empty logs)."""
    for path in Path(folder).rglob("*"):
        if path.is_file() and path.name not in BOOKKEEPING_FILES and path.stat().st_size > 0:
            return True
    return False


def discard_if_unused(folder: str | os.PathLike[str] | None) -> bool:
    """Remove a run folder that a failed run left without results. Returns whether it was removed."""
    if folder is None or not Path(folder).is_dir() or holds_results(folder):
        return False
    import shutil

    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    for parent in (folder.parent, folder.parent.parent):  # runs/<pkg>/ and runs/ when this run made them
        with contextlib.suppress(OSError):
            parent.rmdir()  # only succeeds when empty
    return True


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[io.IOBase]:
    """Open a temporary file next to ``path``; on success fsync and rename it over ``path``.

    If the block raises (or the process dies) the previous ``path`` is left untouched and the temporary
    file is removed.
    """
    if mode not in {"w", "wb"}:
        raise ValueError(f"atomic_open supports 'w' and 'wb', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if hasattr(value, "tolist") and callable(value.tolist):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> Path:
    """Serialise ``data`` (tensors/numpy scalars allowed) to JSON via temp file + rename."""
    text = json.dumps(_jsonable(data), indent=2, sort_keys=True)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write text via temp file + rename."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def save_torch_atomic(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` via temp file + rename, so a crash never leaves a truncated checkpoint."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


def write_metrics(run_dir: str | os.PathLike[str], metrics: Mapping[str, Any], merge: bool = True) -> Path:
    """Write ``<run_dir>/metrics.json`` atomically, merged with what is already there by default."""
    path = Path(run_dir) / "metrics.json"
    current: dict[str, Any] = {}
    if merge and path.exists():
        try:
            current = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            current = {}
    current.update(_jsonable(dict(metrics)))
    return write_json_atomic(path, current)


def build_loggers(run_dir: str | os.PathLike[str]) -> list[Any]:
    """CSV logger always, TensorBoard when ``tensorboard``/``tensorboardX`` is installed; both write to run_dir."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    run_dir = str(run_dir)
    loggers: list[Any] = [CSVLogger(save_dir=run_dir, name="", version="")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(save_dir=run_dir, name="", version="", default_hp_metric=False))
    return loggers


def progress_bar_callback() -> Any:
    """A rich progress bar callback for Lightning (falls back to the TQDM bar if rich is missing)."""
    if importlib.util.find_spec("rich"):
        from pytorch_lightning.callbacks import RichProgressBar

        return RichProgressBar(leave=True)
    from pytorch_lightning.callbacks import TQDMProgressBar

    return TQDMProgressBar()


def track(
    iterable: Iterable[T], description: str = "working", total: int | None = None, every_s: float = 30.0
) -> Iterator[T]:
    """Progress for plain (non-Lightning) loops: a rich bar with ETA on a terminal; otherwise (logs, cluster
    jobs) a line ``<description>: i/total (p%), elapsed, ETA`` on stderr at most every ``every_s`` seconds."""
    import sys
    import time

    if not sys.stderr.isatty():
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        start = last = time.monotonic()
        for done, item in enumerate(iterable, 1):
            yield item
            now = time.monotonic()
            if now - last >= every_s or (total is not None and done == total and now - start >= every_s):
                last = now
                elapsed = now - start
                if total:
                    eta = elapsed / done * (total - done)
                    log(
                        f"{description}: {done}/{total} ({100 * done / total:.0f}%), {elapsed:.0f} s, ETA {eta:.0f} s"
                    )
                else:
                    log(f"{description}: {done} done, {elapsed:.0f} s")
        return
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, transient=True)


#: Lightning's own hardware/seed lines; the environment line says the same in one line
_HARDWARE_LINES = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "LOCAL_RANK:",
    "Seed set to",
    "💡 Tip",
)
_LIGHTNING_LOGGERS = (
    "pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric",
    "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.seed", "lightning_fabric.utilities.rank_zero",
)  # fmt: skip


class _HardwareLineFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_HARDWARE_LINES)


def quiet_lightning_info() -> None:
    """Drop Lightning's hardware/seed info lines (the environment line replaces them). Idempotent; does not
    import Lightning (filters attach to the logger names)."""
    for name in _LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, _HardwareLineFilter) for f in target.filters):
                target.addFilter(_HardwareLineFilter())


def log(message: str) -> None:
    """Print a status line to stderr (rank 0 only)."""
    import sys

    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("RANK", "0")) == 0:
        print(message, file=sys.stderr, flush=True)
