"""The README's first-run numbers: what `tinymim train` + `tinymim finetune` give on the embedded shapes10 task.

For every seed it runs, as a user would (each a fresh ``python -m tinymim.cli`` process):

1. ``tinymim train --seed_everything S`` (relation KD from the shipped builtin teacher, 15 epochs);
2. ``tinymim finetune --ckpt <that run>/student.pth --seed_everything S`` (``finetune-default``, 30 epochs, tested);
3. ``tinymim finetune --ckpt none --seed_everything S`` (the same recipe from random initialisation),

and writes a results record (``results.json``) whose ``main`` table is the final-epoch shapes10 test top-1 of both.

Usage: ``uv run python packages/tinymim/scripts/first_run_record.py --seeds 0 --out DIR [--threads 1]``, then copy
``DIR/results.json`` to ``packages/tinymim/results/first-run.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from paperlab_core.results import Table, results_record
from paperlab_core.runtime import environment, environment_line


def _finished(runs: Path, name: str) -> Path | None:
    """A completed run folder ``*-<name>`` (a tested fine-tune, or a train run with its student.pth), if any."""
    for folder in sorted((runs / "tinymim").glob(f"*-{name}")):
        metrics = folder / "metrics.json"
        done = (
            (folder / "student.pth").is_file()
            if name == "distill"
            else metrics.is_file() and ("test" in json.loads(metrics.read_text()))
        )
        if done:
            return folder
    return None


def _seconds(folder: Path) -> float:
    """Wall time of a finished run: its folder's start stamp (``YYYYmmdd-HHMMSS-``) to metrics.json's mtime."""
    import datetime as dt

    started = dt.datetime.strptime(folder.name[:15], "%Y%m%d-%H%M%S").timestamp()
    return (folder / "metrics.json").stat().st_mtime - started


def _run(verb: list[str], runs: Path, threads: int, name: str) -> tuple[Path, float]:
    """Run ``tinymim VERB`` in a fresh process (or reuse a finished run of the same name: an interrupted record
    resumes, and the stages may run in parallel processes)."""
    found = _finished(runs, name)
    if found is None:
        env = {**os.environ, "PAPERLAB_RUNS": str(runs), "PAPERLAB_THREADS": str(threads)}
        cmd = [sys.executable, "-m", "tinymim.cli", *verb, "--run_name", name, "--threads", str(threads)]
        subprocess.run(cmd, env=env, check=True)
        found = _finished(runs, name)
        assert found is not None, f"{name}: the run left no result"
    return found, _seconds(found)


def _version() -> str:
    from importlib.metadata import version

    return version("tinymim")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0", help="comma list of seeds (default 0)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for seed in seeds:
        runs = args.out / f"seed{seed}"
        s = ["--seed_everything", str(seed)]
        train, t_train = _run(["train", *s], runs, args.threads, "distill")
        student = train / "student.pth"
        tuned, t_tuned = _run(["finetune", "--ckpt", str(student), *s], runs, args.threads, "distilled")
        scratch, t_scratch = _run(["finetune", "--ckpt", "none", *s], runs, args.threads, "scratch")

        def acc(folder: Path) -> float:
            return 100.0 * json.loads((folder / "metrics.json").read_text())["test"]["test/acc1"]

        records.append(
            {
                "key": f"shapes10/seed{seed}",
                "params": {"seed": seed},
                "result": {
                    "scratch": acc(scratch),
                    "distilled": acc(tuned),
                    "train_s": round(t_train, 1),
                    "finetune_distilled_s": round(t_tuned, 1),
                    "finetune_scratch_s": round(t_scratch, 1),
                },
            }
        )
        (args.out / "records.json").write_text(json.dumps(records, indent=1))
    table = Table(
        ["seed", "finetune --ckpt none (scratch)", "finetune --ckpt student.pth (relation KD)", "gain",
         "train s", "finetune s"],
        formats={"finetune --ckpt none (scratch)": ".1f", "finetune --ckpt student.pth (relation KD)": ".1f",
                 "gain": "+.1f", "train s": ".0f", "finetune s": ".0f"},
        title="shapes10 test top-1 % after `tinymim finetune` (final epoch)",
    )  # fmt: skip
    for r in records:
        res = r["result"]
        table.add(r["params"]["seed"], res["scratch"], res["distilled"], res["distilled"] - res["scratch"],
                  res["train_s"], res["finetune_distilled_s"])  # fmt: skip
    if len(records) > 1:
        mean = {k: statistics.fmean(r["result"][k] for r in records) for k in records[0]["result"]}
        table.add("mean", mean["scratch"], mean["distilled"], mean["distilled"] - mean["scratch"],
                  mean["train_s"], mean["finetune_distilled_s"])  # fmt: skip
    # records name the package's commands first (contract): the three commands, then the script that ran them
    command = (
        "tinymim train; tinymim finetune --ckpt <train run>/student.pth; tinymim finetune --ckpt none "
        f"(--seed_everything S, S in {args.seeds}; run by packages/tinymim/scripts/first_run_record.py "
        + " ".join(sys.argv[1:])
        + ")"
    )
    doc = results_record(
        command,
        environment_line(environment("cpu", "32-true", args.threads, {"tinymim": _version()})),
        seeds,
        {"main": table},
        records,
        package="tinymim",
    )
    (args.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(table.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
