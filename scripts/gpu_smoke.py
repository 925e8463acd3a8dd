"""``make gpu-smoke``: drive every package's real CLI on CUDA and print one summary line per package.

For each package folder (or the names given on the command line):

1. ``<cli> train --trainer.fast_dev_run=5 --trainer.accelerator=cuda`` — the Lightning path, bf16 where supported;
2. ``<cli> reproduce --quick --device cuda`` — the package's key experiment at its smallest budget;
3. with two or more GPUs, ``train --trainer.fast_dev_run=5 --trainer.devices=2 --trainer.strategy=ddp`` (not for
   packages declared ``max_devices=1``: full-batch methods);
4. the package's own steps, declared in its ``pyproject.toml`` as ``[tool.paperlab.gpu-smoke]`` (step name = list of
   CLI arguments), e.g. a multi-stage method's ``pipeline`` at two steps per stage.

Each command runs in a fresh process through ``python -m paperlab_core.offline`` (network guard on), with the
sources on ``PYTHONPATH`` (``make gpu-smoke`` sets it), so the packages need not be installed. Any failure —
an ImportError included — fails the package; the exit status is non-zero when any package failed.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = int(os.environ.get("GPU_SMOKE_TIMEOUT", "600"))


def packages(only: set[str]) -> list[tuple[str, str, dict[str, list[str]]]]:
    """(folder name, entry point, extra smoke steps) of every package folder, or of those named in ``only``."""
    found = []
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        toml = tomllib.loads(pyproject.read_text())
        ((_, entry),) = toml["project"]["scripts"].items()
        extra = toml.get("tool", {}).get("paperlab", {}).get("gpu-smoke", {})
        name = pyproject.parent.name
        if not only or name in only:
            found.append((name, entry, {step: [str(a) for a in args] for step, args in extra.items()}))
    return found


def run(entry: str, args: list[str], runs: Path) -> tuple[bool, str, float]:
    """Run one CLI command; return (ok, last stderr line or error, seconds)."""
    env = {**os.environ, "PAPERLAB_RUNS": str(runs), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "paperlab_core.offline", entry, "--", *args],
            env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, f"timed out after {TIMEOUT_S} s", time.perf_counter() - start
    elapsed = time.perf_counter() - start
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        return False, lines[-1] if lines else f"exit {proc.returncode}", elapsed
    return True, "", elapsed


def precision_of(runs: Path, package: str) -> str:
    for metrics in sorted((runs / package).glob("*/metrics.json")):
        env = json.loads(metrics.read_text()).get("env", {})
        if env.get("accelerator") == "cuda":
            return str(env.get("precision"))
    return "?"


def main() -> int:
    import torch

    from paperlab_core.runtime import environment, environment_line

    if not torch.cuda.is_available():
        print("gpu-smoke: CUDA is not available on this machine", file=sys.stderr)
        return 2
    print(environment_line(environment("cuda")), flush=True)
    gpus = torch.cuda.device_count()
    failures = 0
    for name, entry, extra in packages(set(sys.argv[1:])):
        steps = {
            "train": ["train", "--trainer.fast_dev_run=5", "--trainer.accelerator=cuda", "--trainer.devices=1",
                      "--trainer.enable_progress_bar=false"],
            "reproduce": ["reproduce", "--quick", "--device", "cuda"],
        }  # fmt: skip
        spec = importlib.import_module(entry.split(":")[0]).main.spec
        if gpus >= 2 and (spec.max_devices or gpus) >= 2:
            steps["ddp"] = ["train", "--trainer.fast_dev_run=5", "--trainer.accelerator=cuda",
                            "--trainer.devices=2", "--trainer.strategy=ddp", "--trainer.enable_progress_bar=false"]  # fmt: skip
        steps.update(extra)
        cells = []
        ok_all = True
        with tempfile.TemporaryDirectory(prefix=f"gpu-smoke-{name}-") as folder:
            runs = Path(folder)
            for step, args in steps.items():
                ok, why, seconds = run(entry, args, runs)
                ok_all &= ok
                cells.append(
                    f"{step} {'ok' if ok else 'FAILED'} {seconds:.0f}s" + ("" if ok else f" ({why})")
                )
            precision = precision_of(runs, name)
        failures += not ok_all
        print(
            f"{name:15s} {'ok' if ok_all else 'FAILED':7s} precision {precision:11s} " + " | ".join(cells),
            flush=True,
        )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
