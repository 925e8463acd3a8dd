"""``bolt bench``: pre-training throughput, one process, interleaved A/B rounds (spec §7).

Every method runs the same training step as ``bolt train`` (:func:`bolt_ssl.pretrain.ssl_step`, AdamW step, EMA
update) on generated synthetic-retina images held on the device. After ``--warmup`` steps per method, ``--rounds``
rounds run ``--steps`` steps of each method in turn; a method's speed is the median per-step time over all rounds.
Each step is timed twice: wall clock (``perf_counter``) and the process's CPU time (``process_time``). On a machine
shared with other jobs the wall clock also measures the scheduler; the CPU time is what a step costs when it holds
the core(s), i.e. the ceiling this hardware allows the process, and the wall/CPU ratio says how much of it the run
got (ours, a load-robust companion to the spec's wall-clock gate).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from paperlab_core.errors import ConfigError
from paperlab_core.verbs import Run

BENCH_METHODS = ("bolt", "byol", "mae", "supervised", "bolt_shared_detached", "bolt_independent")
GATE_RATIO = 0.95


def _variant(method: str) -> tuple[str, dict[str, Any]]:
    """(pre-training method, SSLConfig overrides) of a bench method name."""
    if method == "bolt_shared_detached":
        return "bolt", {"token_source": "shared_detached"}
    if method == "bolt_independent":
        return "bolt", {"image_aug": "independent"}
    return method, {}


def make_step(
    method: str, preset: dict[str, Any], device: torch.device, precision: str
) -> Callable[[torch.Tensor, int], None]:
    """A closure running one full optimiser step of ``method`` on a batch (images in [0, 1])."""
    from bolt_ssl.augment import finetune_aug
    from bolt_ssl.ema import ema_update_
    from bolt_ssl.module import module_from_config
    from bolt_ssl.perturb import make_generator

    model_cfg = dict(preset["model"])
    base, overrides = _variant(method)
    supervised = base == "supervised"
    model_cfg.update({"method": "mae" if supervised else base, **overrides})
    module = module_from_config(model_cfg).to(device)
    nets, cfg = module.nets, module.cfg
    head = torch.nn.Linear(nets.online.embed_dim, 5).to(device) if supervised else None
    params = [p for p in nets.parameters() if p.requires_grad] + (list(head.parameters()) if head else [])
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    autocast = precision == "bf16-mixed"
    from bolt_ssl.pretrain import ssl_step

    def step(x: torch.Tensor, index: int) -> None:
        g = make_generator(device, 0, index)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            if supervised:
                y = torch.randint(0, 5, (x.shape[0],), generator=g, device=device)
                loss = torch.nn.functional.cross_entropy(
                    head(nets.online(nets.normalise(finetune_aug(x, g)))), y
                )
            else:
                loss = ssl_step(nets, x, cfg, g).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if base in ("bolt", "token_byol", "byol"):
            target, online = nets.online_pairs()
            ema_update_(target, online, 0.99)

    return step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    from bolt_ssl import synth
    from bolt_ssl.presets import load_preset

    device = run.device
    if args.precision == "bf16-mixed" and device.type != "cuda":
        raise ConfigError("--precision bf16-mixed is for CUDA devices (--device cuda)")
    preset = load_preset(args.config)
    size = int(preset["model"]["vit"]["img_size"])
    chans = int(preset["model"]["vit"]["in_chans"])
    run.log(f"generating {args.batch} synthetic-retina images at {size} px")
    images = synth.generate(args.batch, size=size, seed=123).images
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div(255.0)
    if chans == 1:
        x = x.mean(dim=1, keepdim=True)
    steps = {m: make_step(m, preset, device, args.precision) for m in args.methods}
    counter = 0
    for method, step in steps.items():
        for _ in range(args.warmup):
            step(x, counter)
            counter += 1
        _sync(device)
        run.log(f"warm-up done: {method}")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times: dict[str, list[float]] = {m: [] for m in steps}
    cpu: dict[str, list[float]] = {m: [] for m in steps}
    peak: dict[str, float] = {}
    for r in range(args.rounds):
        for method, step in steps.items():
            for _ in range(args.steps):
                _sync(device)
                start, start_cpu = time.perf_counter(), time.process_time()
                step(x, counter)
                _sync(device)
                times[method].append(time.perf_counter() - start)
                cpu[method].append(time.process_time() - start_cpu)
                counter += 1
            if device.type == "cuda":
                peak[method] = max(peak.get(method, 0.0), torch.cuda.max_memory_allocated(device) / 2**20)
        run.log(
            f"round {r + 1}/{args.rounds}: "
            + ", ".join(f"{m} {statistics.median(t):.3f} s/step" for m, t in times.items())
        )
    result: dict[str, Any] = {
        "config": args.config, "batch": args.batch, "image_size": size, "device": str(device),
        "precision": args.precision, "threads": torch.get_num_threads(), "rounds": args.rounds, "steps": args.steps,
        "card": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "methods": {},
    }  # fmt: skip
    for method, t in times.items():
        median, median_cpu = statistics.median(t), statistics.median(cpu[method])
        result["methods"][method] = {"median_step_s": median, "images_per_s": args.batch / median,
                                     "median_step_cpu_s": median_cpu, "cpu_images_per_s": args.batch / median_cpu,
                                     "core_share": median_cpu / median, "peak_mem_mib": peak.get(method)}  # fmt: skip
    if "bolt" in times and "byol" in times:
        bolt, byol = result["methods"]["bolt"], result["methods"]["byol"]
        ratio = bolt["images_per_s"] / byol["images_per_s"]
        ratio_cpu = bolt["cpu_images_per_s"] / byol["cpu_images_per_s"]
        result["ratio_bolt_over_byol"] = ratio
        result["ratio_bolt_over_byol_cpu"] = ratio_cpu
        result["gate"] = {
            "threshold": GATE_RATIO,
            "passed": ratio >= GATE_RATIO,
            "passed_cpu": ratio_cpu >= GATE_RATIO,
        }
    for method, m in result["methods"].items():
        print(f"{method:22s} {m['images_per_s']:9.1f} images/s  ({m['median_step_s']:.4f} s/step median; "
              f"CPU time {m['cpu_images_per_s']:.1f} images/s, core share {m['core_share']:.2f})")  # fmt: skip
    if "ratio_bolt_over_byol" in result:
        gate = result["gate"]
        print(f"BOLT / pixel-BYOL images/s = {result['ratio_bolt_over_byol']:.3f} wall clock "
              f"(gate ≥ {GATE_RATIO}: {'pass' if gate['passed'] else 'FAIL'}), "
              f"{result['ratio_bolt_over_byol_cpu']:.3f} CPU time ({'pass' if gate['passed_cpu'] else 'FAIL'})")  # fmt: skip
    if args.json:
        import json

        print(json.dumps(result))
    write_results(run, result)
    return result


def write_results(run: Run, result: dict[str, Any]) -> None:
    """``results.json`` (a paperlab results record with a ``bench`` table) and ``results.md`` in the run folder."""
    from paperlab_core.results import Table, results_record
    from paperlab_core.runtime import environment_line

    table = Table(["method", "images/s (wall)", "median s/step", "vs pixel BYOL", "images/s (CPU time)",
                   "vs pixel BYOL (CPU)", "core share"], title="Pre-training throughput")  # fmt: skip
    byol = result["methods"].get("byol", {})
    for method, m in result["methods"].items():
        ratio = f"{m['images_per_s'] / byol['images_per_s']:.3f}" if byol else "–"
        ratio_cpu = f"{m['cpu_images_per_s'] / byol['cpu_images_per_s']:.3f}" if byol else "–"
        table.add(method, f"{m['images_per_s']:.1f}", f"{m['median_step_s']:.4f}", ratio,
                  f"{m['cpu_images_per_s']:.1f}", ratio_cpu, f"{m['core_share']:.2f}")  # fmt: skip
    gate = result.get("gate")
    text = "" if gate is None else (
        f"gate: BOLT images/s ≥ {gate['threshold']} × pixel BYOL: wall clock {'pass' if gate['passed'] else 'FAIL'} "
        f"(ratio {result['ratio_bolt_over_byol']:.3f}), CPU time {'pass' if gate['passed_cpu'] else 'FAIL'} "
        f"(ratio {result['ratio_bolt_over_byol_cpu']:.3f}); batch {result['batch']}, {result['image_size']} px, "
        f"{result['device']}, {result['threads']} thread(s), precision {result['precision']}"
    )  # fmt: skip
    record = results_record(run.command, environment_line(run.env), None, {"bench": table}, package=run.package,
                            bench=result, text=text)  # fmt: skip
    run.write_json("results.json", record)
    run.write_text("results.md", f"# {run.command}\n\n{table.to_markdown()}\n\n{text}\n")
