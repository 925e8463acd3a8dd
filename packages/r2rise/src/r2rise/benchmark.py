"""Benchmark (spec §7): batched R2RISE (ensemble fit + vector evaluation) against a sequential one-model loop."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch
from scipy import stats

from paperlab_core.results import Table, results_record
from paperlab_core.runtime import environment_line
from paperlab_core.verbs import Run
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
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Time the batched path end to end (ensemble on ``device``) and (optionally) the sequential reference on the
    same masks (one ``nn.Module`` at a time, on CPU)."""
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
        device=device,
    )
    _synchronize(device)
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
        "device": str(device),
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
                max_delta = max(max_delta, float((value[0] - ensemble.params[key][m].cpu()).abs().max()))
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


def _synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def summary_table(result: dict[str, Any]) -> Table:
    """One row: the spec §7 numbers of a benchmark run."""
    columns = ["N", "dtype", "threads", "batched s", "fit s", "evaluate s"]
    formats = {"batched s": ".2f", "fit s": ".2f", "evaluate s": ".2f"}
    row = [result["n_masks"], result["dtype"], result["threads"], result["batched"]["total_s"],
           result["batched"]["fit_s"], result["batched"]["evaluate_s"]]  # fmt: skip
    if "sequential" in result:
        same = result["same_results"]
        columns += ["sequential s", "speed-up (wall)", "speed-up (CPU)", "identical returns", "max abs Δparam",
                    "Spearman (centred)"]  # fmt: skip
        formats.update({"sequential s": ".1f", "speed-up (wall)": ".1f", "speed-up (CPU)": ".1f",
                        "identical returns": ".0%", "max abs Δparam": ".1e", "Spearman (centred)": ".4f"})  # fmt: skip
        row += [result["sequential"]["total_s"], result["speedup"], result["speedup_cpu_time"],
                same["fraction_models_identical_returns"], same["max_abs_param_diff"],
                same["spearman_centred_maps"]]  # fmt: skip
    columns += ["load avg (start)"]
    formats["load avg (start)"] = ".1f"
    row += [result["load_average_at_start"]]
    table = Table(columns, formats=formats, title="Batched R2RISE vs the sequential one-model loop (spec §7)")
    table.add(*row)
    return table


def benchmark(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``r2rise benchmark``: timings of the batched loop vs a sequential one-model loop (benchmark.json and
    results.json with a one-row table)."""
    result = run_benchmark(
        args.n_masks, args.dtype, args.seed, args.compare_sequential, not args.no_naive, run.device
    )
    run.write_json("benchmark.json", result)
    record = results_record(
        run.command, environment_line(run.env), [args.seed], {"main": summary_table(result)}, benchmark=result
    )
    run.write_json("results.json", record)
    print(summary_table(result).to_markdown())
    return {"benchmark": result}
