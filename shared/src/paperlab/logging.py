"""Run directories, loggers, atomic result files and progress bars."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

RUNS_ENV = "PAPERLAB_RUNS"


def runs_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where run directories live: ``root``, else ``$PAPERLAB_RUNS``, else ``./runs``."""
    return Path(root or os.environ.get(RUNS_ENV) or "runs")


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
    return slug or "run"


def make_run_dir(package: str, name: str = "run", root: str | os.PathLike[str] | None = None) -> Path:
    """Create ``<root>/<package>/<YYYYmmdd-HHMMSS>-<name>/`` (a numeric suffix avoids collisions)."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = runs_root(root) / package
    base.mkdir(parents=True, exist_ok=True)
    candidate = base / f"{stamp}-{_slug(name)}"
    suffix = 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            suffix += 1
            candidate = base / f"{stamp}-{_slug(name)}-{suffix}"


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


def track(iterable: Iterable[T], description: str = "working", total: int | None = None) -> Iterator[T]:
    """Progress bar for plain (non-Lightning) loops; silent when stderr is not a terminal."""
    import sys

    if not sys.stderr.isatty():
        yield from iterable
        return
    from rich.progress import track as rich_track

    yield from rich_track(iterable, description=description, total=total, transient=True)


def log(message: str) -> None:
    """Print a status line to stderr (rank 0 only)."""
    import sys

    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("RANK", "0")) == 0:
        print(message, file=sys.stderr, flush=True)
