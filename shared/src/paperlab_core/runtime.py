"""Accelerator, precision, TF32, seeding, threads and the environment line. torch is imported lazily.

Order matters: the accelerator is resolved first (an explicit request wins, ``auto`` means cuda > mps > cpu), and
precision and TF32 are derived from that resolved accelerator, so an explicit CPU run on a bf16-capable GPU
machine stays in float32.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
from typing import Any, Literal

from paperlab_core.errors import ConfigError

Accelerator = Literal["cuda", "mps", "cpu"]
THREADS_ENV = "PAPERLAB_THREADS"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "gpu", "mps")


def _mps_available(torch: Any) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_accelerator(requested: str | None = "auto") -> Accelerator:
    """``auto``/``None`` → cuda > mps > cpu; ``gpu`` → cuda or mps; ``cpu``/``cuda``/``mps`` are checked."""
    import torch

    name = (requested or "auto").lower()
    if isinstance(requested, str) and name.startswith("cuda:"):
        name = "cuda"
    if name not in DEVICE_CHOICES:
        raise ConfigError(f"unknown accelerator {requested!r} (expected one of {', '.join(DEVICE_CHOICES)})")
    if name in {"auto", "gpu"}:
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available(torch):
            return "mps"
        if name == "gpu":
            raise ConfigError("accelerator 'gpu' requested but neither CUDA nor MPS is available")
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("accelerator 'cuda' requested but CUDA is not available on this machine")
    if name == "mps" and not _mps_available(torch):
        raise ConfigError("accelerator 'mps' requested but MPS is not available on this machine")
    return name  # type: ignore[return-value]


def lightning_accelerator(value: Any) -> str | None:
    """Map a Lightning ``trainer.accelerator`` value to a resolvable name (``None`` for custom objects)."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        return {"tpu": None, "hpu": None}.get(value.lower(), value.lower())
    return None


def select_precision(accelerator: str) -> str:
    """Lightning precision for a *resolved* accelerator: bf16-mixed on bf16-capable CUDA GPUs, else 32-true."""
    if accelerator != "cuda":
        return "32-true"
    import torch

    return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"


def configure_tf32(accelerator: str) -> bool:
    """Allow TF32 matmuls/convolutions when the run is on an Ampere-or-newer CUDA GPU. Returns whether enabled."""
    if accelerator != "cuda":
        return False
    import torch

    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 8:
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    return True


def torch_device(accelerator: str) -> Any:
    """``torch.device`` for a resolved accelerator."""
    import torch

    return torch.device(accelerator)


def parse_threads(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"thread count must be a positive integer, got {value!r}") from None
    if count < 1:
        raise ConfigError(f"thread count must be >= 1, got {count}")
    return count


def set_threads(num_threads: int | None = None, *, import_torch: bool = True) -> int | None:
    """Pin the CPU thread count (torch intra-op and OpenMP).

    ``None`` reads ``$PAPERLAB_THREADS`` and otherwise leaves the libraries' choice alone. Two processes each using
    all cores of a small machine can be an order of magnitude slower than one, so parallel test workers pin 1.
    With ``import_torch=False`` (numpy-only verbs) only the environment is set. Returns the count in force.
    """
    count = parse_threads(num_threads) or parse_threads(os.environ.get(THREADS_ENV))
    if count is not None:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[key] = str(count)
    if not import_torch:
        return count
    import torch

    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()


def seed_everything(seed: int) -> int:
    """Seed python, numpy and torch (every device); ``PL_GLOBAL_SEED`` is set so dataloader workers follow."""
    import numpy as np
    import torch

    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global stream is the point
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    return seed


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def environment(
    accelerator: str | None = None,
    precision: str | None = None,
    threads: int | None = None,
    packages: dict[str, str] | None = None,
    uses_torch: bool = True,
) -> dict[str, Any]:
    """What this run runs on: package versions, python, torch/CUDA, accelerator, device, precision, threads.

    With ``uses_torch=False`` torch is not imported (its version comes from the package metadata).
    """
    info: dict[str, Any] = dict(packages or {})
    info["paperlab-core"] = _version("paperlab-core")
    info["python"] = platform.python_version()
    if uses_torch:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda or "none"
        accelerator = accelerator or resolve_accelerator("auto")
        if accelerator == "cuda":
            info["device"] = f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        threads = threads or torch.get_num_threads()
    else:
        info["torch"] = _version("torch")
        accelerator = accelerator or "cpu"
    info.setdefault("device", cpu_name())
    info["accelerator"] = accelerator
    info["precision"] = precision or ("numpy" if not uses_torch else select_precision(accelerator))
    info["threads"] = threads or parse_threads(os.environ.get("OMP_NUM_THREADS")) or os.cpu_count()
    info["host"] = platform.node()
    return info


def environment_line(info: dict[str, Any]) -> str:
    """One line for the log: ``env: tinymim 0.2.0 | paperlab-core 0.2.0 | python ... | accelerator cpu | ...``."""
    return "env: " + " | ".join(f"{key} {value}" for key, value in info.items() if key != "host")


def print_environment(info: dict[str, Any]) -> str:
    """Print :func:`environment_line` to stderr (rank 0 only) and return it."""
    from paperlab_core.logging import log

    line = environment_line(info)
    log(line)
    return line
