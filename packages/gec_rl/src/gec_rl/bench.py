"""``gec-rl bench plan`` (spec §7.1): sampling + planning of M posterior models on Taxi, dense vs sparse.

The posterior is Dir(α₀ + N) with α₀ = 1/S and N a fixed count table from ``--count-episodes`` uniformly random
episodes of length H on the true model (a synthetic table; spec §7.1 allows either). Timed (2 warm-ups, median of
``--repeats``): dense Dirichlet sampling, sparse sampling (including the models' expected rewards),
``plan_reference`` (per-model loop), dense batched
``plan`` and ``plan_sparse``. Accuracy: the sparse sample is densified and planned by the reference; max |ΔV| and
greedy-action agreement (outside ties) are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gec_rl.envs import Simulator, make_env
from gec_rl.planning import expected_reward, plan, plan_reference, plan_sparse
from gec_rl.posteriors import (
    block_to_dense,
    sample_dirichlet_rows,
    sample_models_sparse,
)


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 2) -> tuple[float, Any]:
    for _ in range(warmup):
        fn()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def random_policy_counts(env: str, H: int, episodes: int, seed: int) -> tuple[Any, np.ndarray]:
    mdp = make_env(env, horizon=H)
    sim = Simulator(mdp, seed, use_gym=False)
    rng = np.random.default_rng(seed)
    counts = np.zeros((mdp.S, mdp.A, mdp.S))
    for _ in range(episodes):
        s = sim.reset()
        for _ in range(H):
            a = int(rng.integers(mdp.A))
            s_next, _ = sim.step(a)
            counts[s, a, s_next] += 1
            s = s_next
    return mdp, counts


def bench_plan(
    env: str = "taxi", M: int = 8, H: int = 20, episodes: int = 200, repeats: int = 10, seed: int = 0
) -> dict[str, Any]:
    mdp, counts = random_policy_counts(env, H, episodes, seed)
    alpha0 = 1.0 / mdp.S
    rng = np.random.default_rng(seed)
    t_dense_sample, P = timed(lambda: sample_dirichlet_rows(rng, alpha0 + counts, M), repeats)
    R = expected_reward(P, mdp.r)
    t_ref, (_, V_ref) = timed(lambda: plan_reference(P, R, H), repeats)
    t_dense_batched, (_, V_bat) = timed(lambda: plan(P, R, H), repeats)
    t_sparse_sample, (block, R_sp) = timed(
        lambda: sample_models_sparse(rng, counts, alpha0, 1.0, M, mdp.r), repeats
    )
    t_sparse_plan, (Q_sp, V_sp) = timed(lambda: plan_sparse(block, R_sp, H), repeats)
    P_sp = block_to_dense(block, M, mdp.S, mdp.A)
    Q_chk, V_chk = plan_reference(P_sp, expected_reward(P_sp, mdp.r), H)
    top2 = np.sort(Q_chk, axis=-1)[..., -2:]
    untied = (top2[..., 1] - top2[..., 0]) > 1e-9
    same_actions = bool(np.all(Q_chk.argmax(-1)[untied] == Q_sp.argmax(-1)[untied]))
    t_sparse_total = t_sparse_sample + t_sparse_plan
    return {
        "env": env,
        "S": mdp.S,
        "A": mdp.A,
        "M": M,
        "H": H,
        "count_episodes": episodes,
        "repeats": repeats,
        "stored_entries_per_row": float(block.nnz / block.shape[0]),
        "t_sample_dense_s": t_dense_sample,
        "t_sample_sparse_s": t_sparse_sample,
        "t_plan_reference_s": t_ref,
        "t_plan_dense_batched_s": t_dense_batched,
        "t_plan_sparse_s": t_sparse_plan,
        "speedup_plan_sparse_vs_reference": t_ref / t_sparse_plan,
        "speedup_plan_dense_batched_vs_reference": t_ref / t_dense_batched,
        "speedup_sample_plus_plan": (t_dense_sample + t_ref) / t_sparse_total,
        "max_abs_dV_batched_vs_reference": float(np.abs(V_bat - V_ref).max()),
        "max_abs_dV_sparse_vs_reference_same_models": float(np.abs(V_sp - V_chk).max()),
        "greedy_actions_equal_outside_ties": same_actions,
    }


def plan_verb(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """``gec-rl bench plan``: the planning benchmark of spec §7.1 (writes bench.json and metrics.json)."""
    result = bench_plan(
        args.data_env, args.M, args.data_horizon, args.count_episodes, args.repeats, args.seed
    )
    run.write_json("bench.json", result)
    for key, value in result.items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
    return {"bench_plan": result}
