"""Accelerator, precision, seeding and thread control shared by every package."""

from __future__ import annotations

import os
import platform
from typing import Literal

import torch

Accelerator = Literal["cuda", "mps", "cpu"]


def select_accelerator() -> Accelerator:
    """Pick the best available accelerator: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def select_precision(accelerator: str | None = None) -> str:
    """Lightning precision string: ``bf16-mixed`` on GPUs that support bf16, otherwise ``32-true``."""
    accelerator = accelerator or select_accelerator()
    if accelerator == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def enable_tf32() -> bool:
    """Allow TF32 matmuls/convolutions on Ampere or newer GPUs. Returns whether it was enabled."""
    if not torch.cuda.is_available():
        return False
    major, _ = torch.cuda.get_device_capability()
    if major < 8:
        return False
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    return True


def set_threads(num_threads: int | None = None) -> int:
    """Set the CPU thread count for torch (intra-op) and OpenMP.

    ``None`` reads ``$PAPERLAB_THREADS`` and otherwise leaves torch's choice alone. Returns the count in force.
    Two processes each using all cores of a small machine can be an order of magnitude slower than one, so
    parallel test workers pin this to 1.
    """
    if num_threads is None:
        env = os.environ.get("PAPERLAB_THREADS")
        num_threads = int(env) if env else None
    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f"thread count must be >= 1, got {num_threads}")
        torch.set_num_threads(num_threads)
        os.environ["OMP_NUM_THREADS"] = str(num_threads)
    return torch.get_num_threads()


def seed_everything(seed: int, workers: bool = True) -> int:
    """Seed python, numpy and torch (all devices) through Lightning; returns the seed."""
    from pytorch_lightning import seed_everything as _seed

    return _seed(seed, workers=workers, verbose=False)


def environment_report() -> str:
    """One line describing the software and the device this run uses."""
    accelerator = select_accelerator()
    parts = [
        f"python {platform.python_version()}",
        f"torch {torch.__version__}",
        f"cuda {torch.version.cuda or 'none'}",
        f"accelerator {accelerator}",
    ]
    if accelerator == "cuda":
        parts.append(f"device {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}")
    else:
        parts.append(f"device {platform.processor() or platform.machine()}")
    parts.append(f"threads {torch.get_num_threads()}")
    parts.append(f"precision {select_precision(accelerator)}")
    return "env: " + " | ".join(parts)


def print_environment_report() -> str:
    """Print :func:`environment_report` to stderr (rank 0 only) and return it."""
    import sys

    line = environment_report()
    if int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("RANK", "0")) == 0:
        print(line, file=sys.stderr, flush=True)
    return line
