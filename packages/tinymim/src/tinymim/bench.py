"""``tinymim bench distill``: the fast truncated distillation step vs the full-forward reference (spec §7)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from tinymim.distill import DistillHeads, DistillOptions, distillation_step
from tinymim.models import ARCHS, ViTConfig, build_vit
from tinymim.teacher import Teacher, TeacherConfig, arch_config, resolve_teacher

PRESETS: dict[str, dict[str, Any]] = {
    "default": {"student": "default_student", "teacher": "default_teacher", "target_block": 5, "batch": 128},
    "paper-b-from-l": {
        "student": "vit_base_patch16",
        "teacher": "mae_vit_large",
        "target_block": 18,
        "batch": 64,
    },
}


def build_pair(
    preset: str, random_weights: bool = True, device: str = "cpu"
) -> tuple[Any, Teacher, DistillHeads, ViTConfig]:
    """Student, teacher and heads of a benchmark preset (random weights: no checkpoint needed)."""
    spec = PRESETS[preset]
    s_config = ViTConfig(**ARCHS[spec["student"]])
    student = build_vit(s_config, drop_path=0.0).to(device)
    if random_weights:
        vit = build_vit(arch_config(spec["teacher"])).to(device)
        teacher = Teacher(vit, spec["target_block"], "native", f"random:{spec['teacher']}", "random")
    else:
        teacher = resolve_teacher(
            TeacherConfig(target_block=spec["target_block"]), s_config.depth, s_config.img_size
        )
        teacher.to(device)
    heads = DistillHeads(student, teacher.embed_dim, DistillOptions(), s_config).to(device)
    return student, teacher, heads, s_config


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed_step(
    student, teacher, heads, images, impl: str, precision: str, device: str
) -> tuple[float, float]:
    """Seconds of one full step (forward, loss, backward) and the loss value."""
    options = DistillOptions(impl=impl)
    dtype = torch.bfloat16 if precision == "bf16-mixed" else None
    _sync(device)
    start = time.perf_counter()
    with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
        loss = distillation_step(student, teacher, heads, images, images, options)["loss"]
    loss.backward()
    _sync(device)
    elapsed = time.perf_counter() - start
    student.zero_grad(set_to_none=True)
    return elapsed, float(loss.detach())


def breakdown(student, teacher, images, impl: str, repeats: int = 5) -> dict[str, float]:
    """Median seconds of teacher targets, student forward, loss and backward for one implementation."""
    from tinymim.distill import reference_student, reference_teacher, student_last_qkv
    from tinymim.losses import relation_distillation_loss
    from tinymim.models import embed_tokens

    parts: dict[str, list[float]] = {"teacher": [], "student_forward": [], "loss": [], "backward": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        t_qkv = reference_teacher(teacher, images) if impl == "reference" else teacher.qkv(images)
        t1 = time.perf_counter()
        x = embed_tokens(student, images)
        s_qkv = reference_student(student, x)[0] if impl == "reference" else student_last_qkv(student, x)[0]
        t2 = time.perf_counter()
        loss = relation_distillation_loss(s_qkv, t_qkv)["loss"]
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        student.zero_grad(set_to_none=True)
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            value_list = parts[key]
            value_list.append(value)
    return {k: statistics.median(v) for k, v in parts.items()}


def memory_child(preset: str, impl: str, batch: int, threads: int) -> dict[str, Any]:
    """Peak memory of a few steps of one implementation (run in a fresh process)."""
    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    student, teacher, heads, config = build_pair(preset, True, device)
    images = torch.randn(batch, 3, config.img_size, config.img_size, device=device)
    timed_step(student, teacher, heads, images, impl, "32-true", device)
    baseline = _proc_status_mb("VmRSS")
    reset = _reset_peak_rss()
    for _ in range(3):
        timed_step(student, teacher, heads, images, impl, "32-true", device)
    out = {"impl": impl, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if reset:
        out["rss_before_steps_mb"] = baseline
        out["step_peak_rss_mb"] = _proc_status_mb("VmHWM")
    return out


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in open("/proc/self/status").read().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (Linux ``clear_refs`` 5) so the steps' own peak can be read."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def run_benchmark(
    preset: str = "default",
    batch: int | None = None,
    steps: int = 20,
    warmup: int = 3,
    threads: int = 2,
    precision: str = "32-true",
    random_weights: bool = True,
    memory: bool = True,
    device: str | None = None,
) -> dict[str, Any]:
    """Alternate fast/reference steps in one process; median times, ratio, losses, memory, breakdown."""
    torch.set_num_threads(threads)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    batch = batch or PRESETS[preset]["batch"]
    torch.manual_seed(0)
    student, teacher, heads, config = build_pair(preset, random_weights, device)
    images = torch.randn(batch, 3, config.img_size, config.img_size, device=device)
    times: dict[str, list[float]] = {"fast": [], "reference": []}
    losses: dict[str, float] = {}
    for step in range(warmup + steps):
        for impl in ("fast", "reference"):
            elapsed, loss = timed_step(student, teacher, heads, images, impl, precision, device)
            losses[impl] = loss
            if step >= warmup:
                times[impl].append(elapsed)
    med = {k: statistics.median(v) for k, v in times.items()}
    result: dict[str, Any] = {
        "preset": preset,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "batch_size": batch,
        "tokens": config.num_tokens,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "warmup": warmup,
        "median_step_s": med,
        "speedup": med["reference"] / med["fast"],
        "loss": losses,
        "loss_rel_diff": abs(losses["fast"] - losses["reference"]) / max(abs(losses["reference"]), 1e-12),
        "load_average": os.getloadavg(),
    }
    if device == "cuda":
        mem = {}
        for impl in ("fast", "reference"):
            torch.cuda.reset_peak_memory_stats()
            timed_step(student, teacher, heads, images, impl, precision, device)
            mem[impl] = torch.cuda.max_memory_allocated() / 2**20
        result["cuda_max_memory_allocated_mb"] = mem
    elif memory:
        result["breakdown_s"] = {
            impl: breakdown(student, teacher, images, impl) for impl in ("fast", "reference")
        }
        mem = {}
        for impl in ("fast", "reference"):
            code = (
                "import json,sys; from tinymim.bench import memory_child; "
                f"print(json.dumps(memory_child({preset!r}, {impl!r}, {batch}, {threads})))"
            )
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            mem[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        result["memory"] = mem
    return result


def bench_distill(args: Any, run: Any) -> dict[str, Any]:
    """``tinymim bench distill``: ``bench.json`` in the run folder, the numbers in ``metrics.json`` too."""
    result = run_benchmark(
        args.preset,
        args.batch_size,
        args.steps,
        args.warmup,
        args.threads,
        args.precision,
        random_weights=args.random_weights or args.preset != "default",
        device=run.device.type,
    )
    path = run.write_json("bench.json", result)
    print(json.dumps(result, indent=2))
    print(f"bench.json: {path}")
    return {"bench": result}
