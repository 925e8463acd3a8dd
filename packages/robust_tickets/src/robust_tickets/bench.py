"""``robust-tickets bench``: mask-search step throughput against a re-creation of the official loop's design,
and batched attack query throughput against a one-example-at-a-time loop (spec 7)."""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from paperlab_core.errors import UserError
from paperlab_core.verbs import Run
from robust_tickets.cls_layer import cls_only_last_layer
from robust_tickets.losses import freelb_objective, l0_penalty
from robust_tickets.models import MaskedModel, load_pretrained

MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm")


class SearchStep:
    """One FreeLB mask-search step; ``official=True`` re-creates the official design (backbone grads kept
    and accumulating, total-norm clip over all parameters, per-matrix sampling ops, non-fused AdamW, word
    embeddings recomputed with gradients on every pass)."""

    def __init__(self, backbone: torch.nn.Module, official: bool, steps: int = 2, lam: float = 0.5) -> None:
        self.net = MaskedModel(backbone, "soft", fused=not official).to(next(backbone.parameters()).device)
        self.official, self.steps, self.lam = official, steps, lam
        if official:
            for p in self.net.backbone.parameters():
                p.requires_grad_(True)
            self.opt = torch.optim.AdamW([self.net.mask_scores], lr=0.1, weight_decay=1e-6, foreach=False)
        else:
            self.net.freeze_backbone()
            self.opt = torch.optim.AdamW([self.net.mask_scores], lr=0.1, weight_decay=1e-6, fused=True)
        self.sizes = [s.numel for s in self.net.slots]
        self.net.train()

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> None:
        net = self.net
        self.opt.zero_grad(set_to_none=not self.official)
        freelb_objective(net, ids, mask, labels, lambda loss: loss.backward(), self.steps,
                         embeds_with_grad=self.official)  # fmt: skip
        params = list(net.parameters()) if self.official else [net.mask_scores]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        (self.lam * l0_penalty(net.mask_scores, self.sizes, self.official)).backward()
        self.opt.step()


def _profile(step: SearchStep, batch: tuple[torch.Tensor, ...]) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(*batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    return {
        "matmul_share": matmul / total if total else 0.0,
        "step_ms": total / 1000,  # self CPU time of the profiled step, all threads
        "top_ops": [
            {"op": e.key, "share": e.self_cpu_time_total / total, "ms": e.self_cpu_time_total / 1000}
            for e in top
        ],
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_search(
    model: str, batch: int, length: int, steps: int, warmup: int, adv_steps: int, device: str = "cpu"
) -> dict[str, Any]:
    """Median step time of ours vs the official design, interleaved step by step, on ``device``.

    On CUDA (spec 7.1 GPU protocol: ``--model bert-base-random --batch 32 --length 128 --adv-steps 5``) both run in
    fp32 with the same TF32 setting, the peak memory of each is recorded, and ours is also timed under bf16
    autocast (reported separately; not part of the ratio). The op profile is taken on CPU only."""
    from paperlab_core.runtime import configure_tf32

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("bench search: --device cuda, but no CUDA device is available")
    tf32 = configure_tf32("cuda") if dev.type == "cuda" else False
    backbone = load_pretrained(model, 2, init_seed=0)
    gen = torch.Generator(device="cpu").manual_seed(0)  # drawn on the CPU, then moved
    vocab = backbone.get_input_embeddings().weight.shape[0]
    data = (
        torch.randint(1000, vocab, (batch, length), generator=gen).to(dev),
        torch.ones(batch, length, dtype=torch.long, device=dev),
        torch.randint(0, 2, (batch,), generator=gen).to(dev),
    )
    mine = copy.deepcopy(backbone)
    cls_only_last_layer(mine)  # the official code runs the full last layer (the reference keeps it)
    ours = SearchStep(mine.to(dev), official=False, steps=adv_steps)
    ref = SearchStep(backbone.to(dev), official=True, steps=adv_steps)
    times: dict[str, list[float]] = {"ours": [], "official": []}
    peak: dict[str, int] = {}
    modes = [("official", ref, False), ("ours", ours, False)]
    if dev.type == "cuda":
        modes.append(("ours_bf16", ours, True))
        times["ours_bf16"] = []
    for i in range(warmup + steps):
        for name, step, bf16 in modes:  # interleaved: load drift hits both
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            _sync(dev)
            start = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                step(*data)
            _sync(dev)
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
            if dev.type == "cuda":
                peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated(dev))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "model": model, "device": str(dev), "batch": batch, "length": length, "adv_steps": adv_steps,
        "timed_steps": steps, "threads": torch.get_num_threads(), "tf32": tf32,
        "official_steps_per_s": 1 / med["official"], "ours_steps_per_s": 1 / med["ours"],
        "ratio": med["official"] / med["ours"], "step_s": times,
    }  # fmt: skip
    if "ours_bf16" in med:
        out["ours_bf16_steps_per_s"] = 1 / med["ours_bf16"]
    if peak:
        out["peak_memory_mib"] = {k: v / 2**20 for k, v in peak.items()}
    if dev.type == "cpu":
        out["profile"] = {"official": _profile(ref, data), "ours": _profile(ours, data)}
    return out


def bench_attack(
    model: str, n: int, max_queries: int, ckpt: str | None, block: int = 25, root: str | None = None
) -> dict[str, Any]:
    from robust_tickets.attacks import Victim, run_attack, summarize, wordswap_attack
    from robust_tickets.data import TextDataModule
    from robust_tickets.evaluate import candidate_table

    dm = TextDataModule(dataset="mr", root=root, tokenizer=model, max_len=48, n_train=32, n_attack=n)
    dm.setup("test")
    if ckpt:
        from robust_tickets.commands import load_module

        net = load_module(ckpt).net
    else:
        net = load_pretrained(model, 2, init_seed=0)
    table = candidate_table(dm.task, dm.tokenizer, load_pretrained(model, 2).get_input_embeddings().weight)
    split = dm.task.test.subset(list(range(n)))
    examples = list(zip(split.texts, split.labels, strict=True))
    attack = wordswap_attack(table, max_queries=max_queries)
    out: dict[str, Any] = {
        "model": model,
        "n": n,
        "max_queries": max_queries,
        "threads": torch.get_num_threads(),
        "block": block,
        "loadavg_start": os.getloadavg(),
    }
    modes = {"batched": (128, 32), "sequential": (1, 1)}
    victims = {name: Victim(net, dm.tokenizer, 48, bs) for name, (bs, _) in modes.items()}
    results: dict[str, list[Any]] = {name: [] for name in modes}
    wall = dict.fromkeys(modes, 0.0)
    # the two sides alternate block by block (and swap order every block), so load drift hits both
    for b, start in enumerate(range(0, n, block)):
        chunk = examples[start : start + block]
        order = list(modes) if b % 2 == 0 else list(reversed(modes))
        for name in order:
            t0 = time.perf_counter()
            results[name] += run_attack(attack, chunk, victims[name], modes[name][1])
            wall[name] += time.perf_counter() - t0
    for name, res in results.items():
        queries = sum(r.queries for r in res)
        out[name] = {"queries": queries, "wall_s": wall[name], "queries_per_s": queries / wall[name],
                     "forward_passes": victims[name].forward_passes,
                     "scored_sequences": victims[name].scored_sequences,
                     "aua": 100 * summarize(res).aua}  # fmt: skip
    out["loadavg_end"] = os.getloadavg()
    out["ratio"] = out["batched"]["queries_per_s"] / out["sequential"]["queries_per_s"]
    pairs = list(zip(results["batched"], results["sequential"], strict=True))
    out["identical_outputs"] = all((a.perturbed, a.status, a.queries) == (b.perturbed, b.status, b.queries)
                                   for a, b in pairs)  # fmt: skip
    out["identical_status_and_queries"] = all(
        (a.status, a.queries) == (b.status, b.queries) for a, b in pairs
    )
    # float32 GEMMs round differently at batch 1 and batch 128 (~1e-7): where two candidates tie that
    # closely the greedy path can pick the other one (the float64 test shows the algorithm is identical)
    out["examples_with_different_text"] = sum(a.perturbed != b.perturbed for a, b in pairs)
    out["forward_ms_per_sequence"] = forward_cost(net, dm.tokenizer, [t for t, _ in examples], 48)
    return out


def forward_cost(net: torch.nn.Module, tokenizer: Any, texts: list[str], max_len: int) -> dict[str, float]:
    """Forward-only cost per sequence (ms) at batch 1 and batch 128 on the attacked sentences, alternating:
    the ceiling of what batching alone can give on this machine."""
    from robust_tickets.attacks import inference_backbone

    scorer = inference_backbone(net).eval()
    enc = tokenizer(sorted(texts, key=len)[: min(len(texts), 128)], truncation=True, max_length=max_len,
                    padding=True, return_tensors="pt")  # fmt: skip
    ids, mask = enc["input_ids"], enc["attention_mask"]
    times: dict[str, list[float]] = {"batch1": [], "batch128": []}
    with torch.inference_mode():
        scorer(input_ids=ids[:1], attention_mask=mask[:1])
        for _ in range(3):
            t0 = time.perf_counter()
            for i in range(len(ids)):
                scorer(input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1])
            times["batch1"].append((time.perf_counter() - t0) / len(ids))
            t0 = time.perf_counter()
            scorer(input_ids=ids, attention_mask=mask)
            times["batch128"].append((time.perf_counter() - t0) / len(ids))
    med = {k: 1000 * statistics.median(v) for k, v in times.items()}
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        scorer(input_ids=ids[:1], attention_mask=mask[:1])
    gflop = counter.get_total_flops() / 1e9  # matmul FLOPs of one sequence at this length
    cfg = scorer.config
    peak = gemm_gflops(4096, cfg.hidden_size, cfg.intermediate_size)
    return {**med, "length": int(ids.shape[1]), "ratio": med["batch1"] / med["batch128"],
            "gflops_batch1": gflop / (med["batch1"] / 1000), "gflops_batch128": gflop / (med["batch128"] / 1000),
            "gemm_peak_gflops": peak, "batching_ceiling": peak / (gflop / (med["batch1"] / 1000))}  # fmt: skip


def gemm_gflops(
    m: int, k: int, n: int, reps: int = 5, timer: Callable[[], float] = time.perf_counter
) -> float:
    """Throughput of a large (m x k) @ (k x n) float32 matmul, the model's FFN shape: what a perfectly batched
    forward could reach at most. Dividing it by the batch-1 forward's GFLOP/s bounds the speed-up batching can
    give on this machine."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    times = []
    for _ in range(reps):
        t0 = timer()
        a @ b
        times.append(timer() - t0)
    return 2 * m * k * n / statistics.median(times) / 1e9


def _report(result: dict[str, Any], run: Run) -> dict[str, Any]:
    import json

    path = run.write_json("bench.json", result)
    summary = {k: v for k, v in result.items() if k not in {"step_s", "profile"}}
    print(json.dumps(summary, indent=2))
    for name, prof in result.get("profile", {}).items():
        top = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in prof["top_ops"][:6])
        print(f"{name}: matmul share {100 * prof['matmul_share']:.0f}%; top ops: {top}")
    print(f"bench.json -> {path}")
    return {"bench": str(path), "ratio": result["ratio"]}


def search_verb(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``bench search``: mask-search steps/s, ours vs the official design (spec 7.1), on ``--device``."""
    result = bench_search(
        args.model, args.batch, args.length, args.steps, args.warmup, args.adv_steps, str(run.device)
    )
    return _report(result, run)


def attack_verb(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``bench attack``: batched vs one-example-at-a-time wordswap queries/s on MR (spec 7.2), on the CPU."""
    root = None if args.data_root is None else str(args.data_root)
    result = bench_attack(args.model, args.data_n_attack, args.max_queries, args.ckpt, args.block, root)
    return _report(result, run)
