"""``doorping bench dc``: the DC iteration with DOORPING, fast path vs the official design (spec §7).

Protocol: toy digits and net, ipc 10, the official loops (10, 50), DOORPING unclamped with ≤ 1000 trigger steps and
threshold 0.5, the same seed for both paths; iterations 0…n−1 timed from a fresh start in a fresh subprocess per
path (so the reference's hook and autograd-history growth is included and the peak RSS is the path's own). The
outputs must agree (criterion 12). Wall and process CPU time are both recorded; on a shared machine the CPU time is
the fair measure of the work each path does (the gate is stated on it, the wall-clock ratio is reported next to it). ``bench.json`` holds the totals, per-iteration times, the ratio, the peak RSS and
the mean number of trigger steps per update; ``results.json`` the same as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from paperlab_core.results import Table, results_record
from paperlab_core.runtime import environment_line
from paperlab_core.verbs import Run


def bench(args: argparse.Namespace, run: Run) -> int:  # pragma: no cover - the group verb prints its help
    return 0


def worker(config: dict[str, Any]) -> dict[str, Any]:
    """Run ``iterations`` DC iterations of one path and return timings and the outputs' location."""
    import resource

    import numpy as np
    import torch

    from doorping.config import DCConfig, Settings, TriggerConfig
    from doorping.datasets import load_digits_set
    from doorping.dc import dc_iteration
    from doorping.poison import AttackState

    torch.set_num_threads(config["threads"])
    data = load_digits_set()
    settings = Settings(
        method="dc", attack="doorping", arch="toy", ipc=10, iterations=config["iterations"], seed=config["seed"],
        trigger=TriggerConfig(max_steps=config["max_steps"], legacy_trigger_loop=config["legacy"]),
        dc=DCConfig(outer_loop=config["outer_loop"], inner_loop=config["inner_loop"], init="real"),
    )  # fmt: skip
    attack = AttackState(data, "doorping", settings.trigger, np.random.default_rng([settings.seed, 1]))
    rng = np.random.default_rng([settings.seed, 2])
    syn = (
        torch.cat([attack.sample(c, settings.ipc, rng) for c in range(10)])
        .detach()
        .clone()
        .requires_grad_(True)
    )
    optimizer = torch.optim.SGD([syn], lr=settings.dc.lr_img, momentum=settings.dc.momentum)
    times, cpu, steps = [], [], []
    for it in range(settings.iterations):
        start, start_cpu = time.perf_counter(), time.process_time()
        stats = dc_iteration(it, settings, attack, syn, optimizer, (1, 10, (8, 8)))
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        steps += stats.steps
        name = "legacy" if config["legacy"] else "fast"
        print(f"{name} iteration {it}: {times[-1]:.2f} s wall, {cpu[-1]:.2f} s CPU", file=sys.stderr)
    torch.save({"syn": syn.detach(), "trigger": attack.trigger.detach()}, config["out"])
    return {
        "times_s": times,
        "total_s": sum(times),
        "cpu_s": cpu,
        "total_cpu_s": sum(cpu),
        "mean_trigger_steps": float(np.mean(steps)) if steps else 0.0,
        "trigger_updates": len(steps),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _spawn(config: dict[str, Any]) -> dict[str, Any]:
    code = "import json, sys; from doorping.bench import worker; print(json.dumps(worker(json.loads(sys.argv[1]))))"
    env = {**os.environ, "OMP_NUM_THREADS": str(config["threads"]), "MKL_NUM_THREADS": str(config["threads"])}
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(config)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker failed: {proc.stderr[-2000:]}")
    sys.stderr.write(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_dc(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    import torch

    paths: dict[str, dict[str, Any]] = {}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, legacy in (("fast", False), ("legacy", True)):
            config = {
                "legacy": legacy, "iterations": args.iterations, "max_steps": args.max_steps, "seed": args.seed,
                "outer_loop": args.outer_loop, "inner_loop": args.inner_loop, "threads": args.threads or 2,
                "out": str(Path(tmp) / f"{name}.pt"),
            }  # fmt: skip
            run.log(f"doorping bench dc: {name} path, {args.iterations} iterations in a fresh process")
            paths[name] = _spawn(config)
            outputs[name] = torch.load(config["out"], weights_only=True)
    diff_syn = float((outputs["fast"]["syn"] - outputs["legacy"]["syn"]).abs().max())
    diff_trigger = float((outputs["fast"]["trigger"] - outputs["legacy"]["trigger"]).abs().max())
    ratio = paths["legacy"]["total_s"] / paths["fast"]["total_s"]
    ratio_cpu = paths["legacy"]["total_cpu_s"] / paths["fast"]["total_cpu_s"]
    summary = {
        "protocol": {
            "data": "digits", "arch": "toy", "ipc": 10, "outer_loop": args.outer_loop, "inner_loop": args.inner_loop,
            "max_trigger_steps": args.max_steps, "threshold": 0.5, "iterations": args.iterations,
            "threads": args.threads or 2, "seed": args.seed,
        },
        "fast": paths["fast"],
        "legacy": paths["legacy"],
        "ratio": ratio,
        "ratio_cpu": ratio_cpu,
        "max_abs_diff_synthetic": diff_syn,
        "max_abs_diff_trigger": diff_trigger,
        "identical_within_1e-5": diff_syn <= 1e-5 and diff_trigger <= 1e-5,
        "gate_ratio_ge_2": ratio >= 2.0,
        "gate_ratio_cpu_ge_2": ratio_cpu >= 2.0,
    }  # fmt: skip
    run.write_json("bench.json", summary)
    table = Table(
        [
            "path",
            "total wall s",
            "total CPU s",
            "per-iteration CPU s",
            "trigger steps / update",
            "peak RSS MB",
        ],
        formats={
            "total wall s": ".1f",
            "total CPU s": ".1f",
            "trigger steps / update": ".0f",
            "peak RSS MB": ".0f",
        },
        title=f"DC iteration with DOORPING ({args.iterations} iterations, loops {args.outer_loop}/{args.inner_loop})",
    )
    for name, label in (("fast", "package (prefix forward, no hooks, detached re-poison)"),
                        ("legacy", "official design (hook leak, model per step, no detach)")):  # fmt: skip
        p = paths[name]
        table.add(label, p["total_s"], p["total_cpu_s"], " ".join(f"{t:.1f}" for t in p["cpu_s"]),
                  p["mean_trigger_steps"], p["peak_rss_mb"])  # fmt: skip
    gate = Table(["measure", "value"], title="Gate")
    gate.add("speed-up, CPU time (official / package)", f"{ratio_cpu:.2f}×")
    gate.add("speed-up, wall time (official / package)", f"{ratio:.2f}×")
    gate.add("gate ≥ 2× (CPU time)", "pass" if ratio_cpu >= 2.0 else "FAIL")
    gate.add("max |Δ| synthetic set / trigger", f"{diff_syn:.1e} / {diff_trigger:.1e}")
    document = results_record(run.command, environment_line(run.env), [args.seed], {"main": table, "gate": gate},
                              package=run.package, bench=summary)  # fmt: skip
    run.write_json("results.json", document)
    print(table.to_markdown())
    print(gate.to_markdown())
    return {"ratio": ratio, "ratio_cpu": ratio_cpu, "identical": summary["identical_within_1e-5"]}
