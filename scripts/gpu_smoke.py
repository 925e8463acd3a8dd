"""Run a few bf16 training steps of every package on CUDA and print one line per package.

Each package exposes ``<pkg>.smoke.gpu_smoke() -> str``. Used on a lent GPU machine via ``make gpu-smoke``
(sources on PYTHONPATH, no install needed). A package whose dependencies are missing there is reported as
skipped; any other failure makes the script exit non-zero.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    import torch

    from paperlab_core.runtime import enable_tf32, environment_report

    print(environment_report(), flush=True)
    if not torch.cuda.is_available():
        print("gpu-smoke: CUDA is not available on this machine", file=sys.stderr)
        return 2
    enable_tf32()
    only = set(sys.argv[1:])
    failures = 0
    for folder in sorted((ROOT / "packages").glob("*/src/*/smoke.py")):
        name = folder.parent.name
        if only and name not in only:
            continue
        start = time.perf_counter()
        try:
            line = importlib.import_module(f"{name}.smoke").gpu_smoke()
            status = "ok"
        except ImportError as err:
            line, status = f"missing dependency: {err}", "skipped"
        except Exception as err:  # report every package, then fail
            traceback.print_exc()
            line, status = f"{type(err).__name__}: {err}", "FAILED"
            failures += 1
        torch.cuda.synchronize()
        print(f"{name:15s} {status:7s} {time.perf_counter() - start:6.1f}s  {line}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
