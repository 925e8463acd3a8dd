"""Benchmark (spec §7): batched R2RISE (ensemble fit + vector evaluation) against a sequential one-model loop."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from paperlab_core.logging import log, make_run_dir, write_json_atomic
from paperlab_core.runtime import set_threads
from r2rise.demos import make_demos
from r2rise.envs import env_spaces
from r2rise.estimators import all_maps
from r2rise.evaluate import Evaluator, evaluate_naive
from r2rise.explain import DTYPES, ExplainConfig, make_normaliser
from r2rise.learners import fit_ensemble, fit_single
from r2rise.masks import frame_weights, generate_grids, grids_to_masks, num_blocks


def run_benchmark(
    n_masks: int = 200,
    dtype: str = "float64",
    seed: int = 0,
    compare_sequential: bool = True,
    naive: bool = True,
) -> dict[str, Any]:
    """Time the batched path end to end and (optionally) the sequential reference on the same masks."""
    cfg = ExplainConfig(n_masks=n_masks, dtype=dtype, seed=seed, chunk=n_masks)
    start = time.perf_counter()
    demos = make_demos("CartPole-v1", 5, 200, 0.1, 0.45, cfg.block, seed)
    demo_s = time.perf_counter() - start
    obs, actions, _ = demos.frames()
    _, num_actions = env_spaces(demos.env_id)
    normaliser = make_normaliser(demos, cfg.obs_scaling)
    torch_dtype = DTYPES[dtype]

    start, cpu_start = time.perf_counter(), time.process_time()
    grids = generate_grids(n_masks, demos.num_demos, num_blocks(demos.length, cfg.block), cfg.keep_p, seed)
    masks = grids_to_masks(grids, demos.length, cfg.block)
    weights = frame_weights(masks, demos.valid)
    evaluator = Evaluator(demos.env_id, cfg.episodes, cfg.epsilon, seed)
    fit_start = time.perf_counter()
    ensemble = fit_ensemble(
        obs,
        actions,
        weights,
        num_actions,
        cfg.learner,
        cfg.hidden,
        cfg.lr,
        cfg.steps,
        seed,
        None,
        normaliser,
        torch_dtype,
    )
    fit_s = time.perf_counter() - fit_start
    eval_start = time.perf_counter()
    batched_returns = evaluator.evaluate(ensemble.act, n_masks)
    eval_s = time.perf_counter() - eval_start
    batched_maps = all_maps(grids, masks, batched_returns.mean(axis=1), cfg.keep_p, cfg.ridge, cfg.block)
    batched_s = time.perf_counter() - start
    batched_cpu = time.process_time() - cpu_start
    out: dict[str, Any] = {
        "n_masks": n_masks,
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "demo_generation_s": demo_s,
        "batched": {"total_s": batched_s, "cpu_s": batched_cpu, "fit_s": fit_s, "evaluate_s": eval_s},
        "load_average_at_start": os.getloadavg()[0],
    }
    if compare_sequential:
        start, cpu_start = time.perf_counter(), time.process_time()
        seq_returns = np.zeros_like(batched_returns)
        max_delta = 0.0
        for m in range(n_masks):
            single = fit_single(
                obs,
                actions,
                weights[m] > 0,
                num_actions,
                cfg.learner,
                cfg.hidden,
                cfg.lr,
                cfg.steps,
                seed,
                m,
                normaliser,
                torch_dtype,
            )
            seq_returns[m] = evaluator.evaluate(single.act, 1)[0]
            for key, value in single.params.items():
                max_delta = max(max_delta, float((value[0] - ensemble.params[key][m]).abs().max()))
        seq_maps = all_maps(grids, masks, seq_returns.mean(axis=1), cfg.keep_p, cfg.ridge, cfg.block)
        seq_s = time.perf_counter() - start
        seq_cpu = time.process_time() - cpu_start
        identical = np.all(seq_returns == batched_returns, axis=1)
        out["sequential"] = {"total_s": seq_s, "cpu_s": seq_cpu}
        out["speedup"] = seq_s / batched_s
        out["speedup_cpu_time"] = seq_cpu / batched_cpu
        out["same_results"] = {
            "fraction_models_identical_returns": float(identical.mean()),
            "max_abs_param_diff": max_delta,
            "spearman_centred_maps": float(
                stats.spearmanr(
                    batched_maps["centred_block"].ravel(), seq_maps["centred_block"].ravel()
                ).statistic
            ),
        }
    if naive:
        start = time.perf_counter()
        for m in range(n_masks):
            member = ensemble.select(m)
            evaluate_naive(
                lambda o, member=member: int(member.act(np.asarray(o)[None, None])[0, 0]),
                demos.env_id,
                cfg.episodes,
                seed,
            )
        out["naive_single_env_evaluation_s"] = time.perf_counter() - start
    out["load_average_at_end"] = os.getloadavg()[0]
    return out


def benchmark_main(argv: list[str]) -> int:
    """Timings of the batched R2RISE loop vs a sequential one-model loop (benchmark.json)."""
    parser = argparse.ArgumentParser(prog="r2rise benchmark", description=benchmark_main.__doc__)
    parser.add_argument("--n-masks", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float64", choices=sorted(DTYPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare-sequential", action="store_true")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive single-env evaluation loop")
    parser.add_argument("--out", help="output folder (default: runs/r2rise/<timestamp>-benchmark)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    result = run_benchmark(args.n_masks, args.dtype, args.seed, args.compare_sequential, not args.no_naive)
    out = Path(args.out) if args.out else make_run_dir("r2rise", "benchmark")
    write_json_atomic(out / "benchmark.json", result)
    log(f"r2rise benchmark: {result}")
    print(out / "benchmark.json")
    return 0
