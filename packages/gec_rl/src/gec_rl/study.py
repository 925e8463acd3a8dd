"""The regret study behind ``gec-rl regret`` and ``gec-rl reproduce``: envs × agents × seeds, CSV/PNG/Markdown.

Outputs (spec §4): ``regret.csv`` (long format), ``summary.csv``, ``summary.md`` and one ``regret_<env>.png`` per
env. Each job's RNG comes from (seed, env, agent), so results do not depend on ``--workers``.

Summary conventions: R(T/4), R(T/2), R(T), R(T)/T and CPU seconds are mean ± sd over seeds; ``slope`` is the
two-point log–log slope log(R(T)/R(T/4))/log 4 of the *seed-mean* cumulative-regret curve (recomputable from
``regret.csv``), and ``slope_sd`` the sd of the per-seed slopes.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gec_rl.agents import AGENT_NAMES, parse_agent_spec
from gec_rl.envs import ENV_NAMES
from gec_rl.regret import RunResult, run_job, summarise, two_point_slope

DEFAULT_ENVS = ("riverswim", "frozenlake")
DEFAULT_AGENTS = ("ops_mb", "psrl", "max_of_j", "ucbvi", "eps_greedy_q")
CSV_FIELDS = ("env", "agent", "seed", "episode", "inst_regret", "cum_regret", "v_star", "v_pi", "wall_s")


def _job(args: tuple[str, str, int, int, int]) -> tuple[tuple[str, str, int], RunResult]:
    env, agent, seed, T, H = args
    return (env, agent, seed), run_job(env, agent, seed, T, H)


def validate_study(envs: list[str], agents: list[str], T: int, H: int) -> None:
    """Fail early, with the supported names, before any worker starts."""
    from gec_rl.envs import make_env

    for env in envs:
        make_env(env, horizon=H)  # raises a clear ValueError for unknown ids / envs without P
    for agent in agents:
        name, _ = parse_agent_spec(agent)
        if name not in AGENT_NAMES:
            raise ValueError(f"unknown agent {name!r}; supported: {', '.join(AGENT_NAMES)}")
    if T < 4:
        raise ValueError(f"--T must be >= 4 to report R(T/4) (got {T})")
    if H < 1:
        raise ValueError(f"--H must be >= 1 (got {H})")


def run_study(
    envs: list[str], agents: list[str], seeds: list[int], T: int, H: int, workers: int = 1
) -> dict[tuple[str, str, int], RunResult]:
    """Run every (env, agent, seed) job; ``workers > 1`` uses a process pool (fork where available)."""
    validate_study(envs, agents, T, H)
    jobs = [(env, agent, seed, T, H) for env in envs for agent in agents for seed in seeds]
    if workers <= 1:
        pairs = [_job(job) for job in jobs]
    else:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        ctx = multiprocessing.get_context(method)
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            pairs = list(pool.map(_job, jobs))
    return dict(pairs)


def regret_csv_text(results: dict[tuple[str, str, int], RunResult]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for (env, agent, seed), res in results.items():
        cum = np.cumsum(res.inst_regret)
        for t in range(len(cum)):
            writer.writerow(
                [
                    env,
                    agent,
                    seed,
                    t + 1,
                    repr(float(res.inst_regret[t])),
                    repr(float(cum[t])),
                    repr(res.v_star),
                    repr(float(res.v_pi[t])),
                    f"{res.wall_s[t]:.4f}",
                ]
            )
    return buffer.getvalue()


def summary_rows(results: dict[tuple[str, str, int], RunResult]) -> list[dict[str, Any]]:
    """One row per (env, agent): mean ± sd over seeds, and the slope of the seed-mean curve."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for (env, agent, _), res in results.items():
        groups.setdefault((env, agent), []).append(res)
    rows = []
    for (env, agent), runs in groups.items():
        curves = np.stack([np.cumsum(r.inst_regret) for r in runs])
        per_seed = [summarise(c) for c in curves]
        row: dict[str, Any] = {"env": env, "agent": agent, "seeds": len(runs), "v_star": runs[0].v_star}
        for key in ("R_T4", "R_T2", "R_T", "R_T_over_T"):
            values = np.array([s[key] for s in per_seed])
            row[key] = float(values.mean())
            row[f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        row["slope"] = two_point_slope(curves.mean(0))
        slopes = np.array([s["slope"] for s in per_seed])
        row["slope_sd"] = float(np.nanstd(slopes, ddof=1)) if len(slopes) > 1 else 0.0
        cpu = np.array([r.wall_s[-1] for r in runs])
        row["cpu_s"] = float(cpu.mean())
        row["cpu_s_sd"] = float(cpu.std(ddof=1)) if len(cpu) > 1 else 0.0
        rows.append(row)
    return rows


def summary_csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _pm(row: dict[str, Any], key: str, digits: int = 1) -> str:
    return f"{row[key]:.{digits}f} ± {row[key + '_sd']:.{digits}f}"


def summary_markdown(rows: list[dict[str, Any]], header: str = "") -> str:
    lines = [header] if header else []
    for env in dict.fromkeys(r["env"] for r in rows):
        env_rows = [r for r in rows if r["env"] == env]
        lines += [
            f"**{env}** (V*_1(μ) = {env_rows[0]['v_star']:.3f}, {env_rows[0]['seeds']} seeds)",
            "",
            "| agent | R(T/4) | R(T/2) | R(T) | R(T)/T | slope T/4→T | CPU s |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in env_rows:
            slope = "nan" if math.isnan(r["slope"]) else f"{r['slope']:.2f}"
            lines.append(
                f"| {r['agent']} | {_pm(r, 'R_T4')} | {_pm(r, 'R_T2')} | {_pm(r, 'R_T')} | "
                f"{_pm(r, 'R_T_over_T', 3)} | {slope} (sd {r['slope_sd']:.2f}) | {_pm(r, 'cpu_s')} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot_env(results: dict[tuple[str, str, int], RunResult], env: str, path: Path) -> None:
    """Mean ± 1 sd cumulative regret per agent, with a log–log inset annotated with the two-point slopes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    inset = ax.inset_axes((0.08, 0.5, 0.35, 0.42))
    agents = dict.fromkeys(agent for (e, agent, _) in results if e == env)
    for agent in agents:
        curves = np.stack(
            [np.cumsum(r.inst_regret) for (e, a, _), r in results.items() if e == env and a == agent]
        )
        mean, sd = curves.mean(0), curves.std(0)
        t = np.arange(1, len(mean) + 1)
        slope = two_point_slope(mean)
        (line,) = ax.plot(t, mean, label=f"{agent} (slope {slope:.2f})")
        ax.fill_between(t, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        positive = mean > 0
        inset.loglog(t[positive], mean[positive], color=line.get_color())
    ax.set_xlabel("episode t")
    ax.set_ylabel("cumulative pseudo-regret R(t)")
    ax.set_title(f"{env}: mean ± 1 sd over seeds")
    ax.legend(loc="lower right", fontsize=8)
    inset.set_title("log–log", fontsize=8)
    inset.tick_params(labelsize=6)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    from paperlab_core.logging import atomic_open

    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def write_study(
    results: dict[tuple[str, str, int], RunResult], out: Path, elapsed_s: float, note: str
) -> list[dict]:
    from paperlab_core.logging import write_json_atomic, write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results)
    write_text_atomic(out / "regret.csv", regret_csv_text(results))
    write_text_atomic(out / "summary.csv", summary_csv_text(rows))
    header = f"Regret study ({note}); wall time {elapsed_s:.1f} s.\n"
    write_text_atomic(out / "summary.md", summary_markdown(rows, header))
    write_json_atomic(out / "summary.json", {"rows": rows, "wall_s": elapsed_s, "command": note})
    for env in dict.fromkeys(env for (env, _, _) in results):
        plot_env(results, env, out / f"regret_{env}.png")
    return rows


def write_run_outputs(
    run_dir: str | Path, history: list[tuple[int, float, float, float]], metrics: dict
) -> None:
    """``regret.csv`` and metrics.json of a single ``gec-rl train`` run."""
    from paperlab_core.logging import write_metrics, write_text_atomic

    lines = ["episode,inst_regret,cum_regret,v_pi"]
    lines += [f"{t},{inst!r},{cum!r},{v!r}" for t, inst, cum, v in history]
    write_text_atomic(Path(run_dir) / "regret.csv", "\n".join(lines) + "\n")
    write_metrics(run_dir, {"regret": metrics})


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--envs", default=",".join(DEFAULT_ENVS), help=f"comma list from {', '.join(ENV_NAMES)}"
    )
    parser.add_argument(
        "--agents",
        default=",".join(DEFAULT_AGENTS),
        help=f"comma list of agent specs ({', '.join(AGENT_NAMES)}); options as ops_mb:eta=0.5:M=16",
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma list of integer seeds")
    parser.add_argument("--T", type=int, default=2000, help="episodes per run")
    parser.add_argument("--H", type=int, default=20, help="horizon")
    parser.add_argument("--workers", type=int, default=2, help="parallel worker processes")
    parser.add_argument("--out", default=None, help="output folder (default: a new run directory)")


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def regret_main(argv: list[str]) -> int:
    """Regret study: envs × agents × seeds; writes regret.csv, summary.csv/md and one PNG per env."""
    from paperlab_core.logging import log, make_run_dir

    parser = argparse.ArgumentParser(prog="gec-rl regret", description=regret_main.__doc__)
    add_study_arguments(parser)
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in _split(args.seeds)]
    except ValueError:
        parser.error(f"--seeds must be a comma list of integers (got {args.seeds!r})")
    envs, agents = _split(args.envs), _split(args.agents)
    try:
        validate_study(envs, agents, args.T, args.H)
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out) if args.out else make_run_dir("gec_rl", "regret")
    start = time.perf_counter()
    results = run_study(envs, agents, seeds, args.T, args.H, args.workers)
    elapsed = time.perf_counter() - start
    note = (
        f"gec-rl regret --envs {','.join(envs)} --agents {','.join(agents)} --seeds {args.seeds} "
        f"--T {args.T} --H {args.H} --workers {args.workers}"
    )
    write_study(results, out, elapsed, note)
    print((out / "summary.md").read_text())
    log(f"gec-rl regret: wrote {out}")
    return 0
