"""``gec-rl reproduce``: the regret study of spec §5 plus the behavioural acceptance checks (criteria 8–10)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from gec_rl.study import DEFAULT_AGENTS, DEFAULT_ENVS, run_study, summary_markdown, write_study

ETA_HALF = "ops_mb:eta=0.5"
MODEL_FREE_AGENTS = ("ops_mf", "ops_mf:sampler=gibbs:gamma_schedule=constant", "ops_linear_lmc")


def behaviour_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Criteria 8–10 of the spec / the issue's behaviour list, evaluated on the summary rows."""
    checks = []
    by_key = {(r["env"], r["agent"]): r for r in rows}
    for env in dict.fromkeys(r["env"] for r in rows):
        ops, eps = by_key[(env, "ops_mb")], by_key[(env, "eps_greedy_q")]
        psrl, moj = by_key[(env, "psrl")], by_key[(env, "max_of_j")]
        rate_ratio = ops["R_T"] / (4 * ops["R_T4"])  # (R(T)/T) / (R(T/4)/(T/4))
        items = [
            ("ops_mb slope T/4→T ≤ 0.6", ops["slope"], ops["slope"] <= 0.6),
            ("ops_mb R(T)/T ≤ 0.05", ops["R_T_over_T"], ops["R_T_over_T"] <= 0.05),
            ("ops_mb (R(T)/T)/(R(T/4)/(T/4)) ≤ 0.5", rate_ratio, rate_ratio <= 0.5),
            ("R_OPS(T) ≤ 0.2·R_εgreedy(T)", ops["R_T"] / eps["R_T"], ops["R_T"] <= 0.2 * eps["R_T"]),
            ("R_OPS(T) ≤ 2.5·R_PSRL(T)", ops["R_T"] / psrl["R_T"], ops["R_T"] <= 2.5 * psrl["R_T"]),
            ("R_OPS(T) ≤ 2.5·R_max_of_j(T)", ops["R_T"] / moj["R_T"], ops["R_T"] <= 2.5 * moj["R_T"]),
            ("ε-greedy slope ≥ 0.9 (harness sanity)", eps["slope"], eps["slope"] >= 0.9),
        ]
        checks += [{"env": env, "check": name, "value": float(v), "pass": bool(ok)} for name, v, ok in items]
    return checks


def model_free_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Criteria 11 and 13: model-free and linear OPS are sublinear on RiverSwim (slope ≤ 0.7)."""
    return [
        {
            "env": r["env"],
            "check": f"{r['agent']} slope T/4→T ≤ 0.7",
            "value": float(r["slope"]),
            "pass": bool(r["slope"] <= 0.7),
        }
        for r in rows
    ]


def tiger_check(T: int, seeds: list[int], H: int = 3) -> tuple[dict[str, Any], str]:
    """Criterion 14: ops_pomdp on Tiger, mean regret of the last quarter < 50% of the first quarter."""
    from gec_rl.pomdp import run_pomdp

    regrets = np.stack([run_pomdp(T=T, H=H, seed=seed) for seed in seeds])
    quarter = T // 4
    first, last = float(regrets[:, :quarter].mean()), float(regrets[:, -quarter:].mean())
    check = {
        "env": f"tiger (H={H})",
        "check": "ops_pomdp last-quarter regret < 0.5 × first quarter",
        "value": last / first,
        "pass": bool(last < 0.5 * first),
    }
    text = (
        f"ops_pomdp on Tiger (H = {H}, T = {T}, seeds {seeds}): mean per-episode regret first quarter "
        f"{first:.4f}, last quarter {last:.4f}, cumulative {float(regrets.sum(1).mean()):.2f}.\n"
    )
    return check, text


def checks_markdown(checks: list[dict[str, Any]]) -> str:
    lines = ["| env | check | measured | pass |", "|---|---|---|---|"]
    lines += [
        f"| {c['env']} | {c['check']} | {c['value']:.3f} | {'yes' if c['pass'] else 'NO'} |" for c in checks
    ]
    return "\n".join(lines) + "\n"


def reproduce(quick: bool = False, workers: int = 2, out: Path | None = None) -> int:
    from paperlab_core.logging import log, make_run_dir, write_json_atomic, write_text_atomic

    T, seeds = (500, [0, 1]) if quick else (2000, [0, 1, 2])
    agents = [*DEFAULT_AGENTS, ETA_HALF]
    out = out or make_run_dir("gec_rl", "reproduce-quick" if quick else "reproduce")
    start = time.perf_counter()
    results = run_study(list(DEFAULT_ENVS), agents, seeds, T, 20, workers)
    elapsed = time.perf_counter() - start
    command = f"gec-rl reproduce{' --quick' if quick else ''} --workers {workers}"
    rows = write_study(results, out, elapsed, command)
    checks = behaviour_checks(rows)
    start_mf = time.perf_counter()
    mf_results = run_study(["riverswim"], list(MODEL_FREE_AGENTS), seeds, T, 20, workers)
    mf_rows = write_study(
        mf_results, out / "model_free", time.perf_counter() - start_mf, command + " (model-free)"
    )
    checks += model_free_checks(mf_rows)
    tiger, tiger_text = tiger_check(100 if quick else 200, seeds)
    checks.append(tiger)
    elapsed = time.perf_counter() - start
    text = (
        f"# gec-rl reproduce\n\nCommand: `{command}` (T = {T}, H = 20, seeds {seeds}); wall time {elapsed:.1f} s.\n\n"
        "## Regret\n\n"
        + summary_markdown(rows)
        + "\n## Model-free and linear OPS (RiverSwim)\n\n"
        + summary_markdown(mf_rows)
        + "\n## POMDP\n\n"
        + tiger_text
        + "\n## Behavioural checks (spec criteria 8–11, 13, 14)\n\n"
        + ("The thresholds are stated for T = 2000; `--quick` (T = 500) is a smoke run.\n\n" if quick else "")
        + checks_markdown(checks)
    )
    write_text_atomic(out / "results.md", text)
    write_json_atomic(
        out / "results.json",
        {"rows": rows, "model_free_rows": mf_rows, "checks": checks, "wall_s": elapsed, "command": command},
    )
    print(text)
    log(f"gec-rl reproduce: wrote {out}")
    return 0
