"""The regret study behind ``gec-rl regret`` and ``gec-rl reproduce``: envs × agents × seeds, CSV/PNG/Markdown.

Outputs (spec §4): ``regret.csv`` (long format), ``summary.csv``, ``summary.md``, ``summary.json``,
``results.json`` (the summary table and one record per job, :mod:`paperlab_core.results`) and one
``regret_<env>.png`` per env. Each job's RNG comes from (seed, env, agent), so results do not depend on
``--workers``.

Summary conventions: R(T/4), R(T/2), R(T), R(T)/T and CPU seconds are mean ± sd over seeds; ``slope`` is the
two-point log–log slope log(R(T)/R(T/4))/log 4 of the *seed-mean* cumulative-regret curve (recomputable from
``regret.csv``: it only needs the seed means of R(T/4) and R(T)), and ``slope_sd`` the sd of the per-seed slopes.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import multiprocessing
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gec_rl.agents import check_agent_spec
from gec_rl.regret import RunResult, run_job, slope_between, summarise
from paperlab_core.errors import ConfigError

DEFAULT_ENVS = ("riverswim", "frozenlake")
DEFAULT_AGENTS = ("ops_mb", "psrl", "max_of_j", "ucbvi", "eps_greedy_q")
CSV_FIELDS = ("env", "agent", "seed", "episode", "inst_regret", "cum_regret", "v_star", "v_pi", "wall_s")
SUMMARY_COLUMNS = ("agent", "seeds", "R(T/4)", "R(T/2)", "R(T)", "R(T)/T", "slope T/4→T", "CPU s")
CURVE_POINTS = 20  # cumulative regret kept at T/20, 2T/20, ..., T in records (enough for the plots)

Results = dict[tuple[str, str, int], RunResult]


def _job(args: tuple[str, str, int, int, int]) -> tuple[tuple[str, str, int], RunResult]:
    env, agent, seed, T, H = args
    return (env, agent, seed), run_job(env, agent, seed, T, H)


def validate_study(envs: Iterable[str], agents: Iterable[str], T: int, H: int) -> None:
    """Fail early, with the supported names, before any worker starts."""
    from gec_rl.envs import make_env

    if T < 4:
        raise ConfigError(f"--data.episodes must be >= 4 to report R(T/4) (got {T})")
    if H < 1:
        raise ConfigError(f"--data.horizon must be >= 1 (got {H})")
    for env in envs:
        make_env(env, horizon=H)  # a one-line ConfigError for unknown ids / envs without P
    for agent in agents:
        check_agent_spec(agent)


def run_study(
    envs: list[str], agents: list[str], seeds: list[int], T: int, H: int, workers: int = 1
) -> Results:
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


def regret_csv_text(results: Results) -> str:
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


def curve_points(T: int) -> list[int]:
    """Episodes (1-based) at which records keep the cumulative regret: T/20, 2T/20, ..., T."""
    return sorted({max(1, round(k * T / CURVE_POINTS)) for k in range(1, CURVE_POINTS + 1)})


def run_summary(res: RunResult) -> dict[str, Any]:
    """The numbers one job contributes to the summary (JSON-ready: a NaN slope becomes ``None``)."""
    cum = np.cumsum(res.inst_regret)
    out: dict[str, Any] = summarise(cum)
    if math.isnan(out["slope"]):
        out["slope"] = None
    points = curve_points(len(cum))
    out.update(
        {
            "v_star": float(res.v_star),
            "cpu_s": float(res.wall_s[-1]),
            "curve_t": points,
            "curve": [float(cum[t - 1]) for t in points],
        }
    )
    return out


def _mean_sd(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def aggregate_rows(items: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (env, agent) from per-seed summaries (:func:`run_summary`): mean ± sd over seeds and the
    slope of the seed-mean curve. Rows keep the order in which (env, agent) first appear."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for env, agent, summary in items:
        groups.setdefault((env, agent), []).append(summary)
    rows = []
    for (env, agent), runs in groups.items():
        row: dict[str, Any] = {"env": env, "agent": agent, "seeds": len(runs), "v_star": runs[0]["v_star"]}
        for key in ("R_T4", "R_T2", "R_T", "R_T_over_T"):
            row[key], row[f"{key}_sd"] = _mean_sd([r[key] for r in runs])
        row["slope"] = slope_between(row["R_T4"], row["R_T"])
        slopes = np.array([math.nan if r["slope"] is None else r["slope"] for r in runs], dtype=float)
        finite = slopes[np.isfinite(slopes)]
        row["slope_sd"] = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
        row["cpu_s"], row["cpu_s_sd"] = _mean_sd([r["cpu_s"] for r in runs])
        rows.append(row)
    return rows


def summary_rows(results: Results) -> list[dict[str, Any]]:
    """One row per (env, agent) of a study's results (see :func:`aggregate_rows`)."""
    return aggregate_rows((env, agent, run_summary(res)) for (env, agent, _), res in results.items())


def summary_csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _pm(row: Mapping[str, Any], key: str, digits: int = 1) -> str:
    return f"{row[key]:.{digits}f} ± {row[key + '_sd']:.{digits}f}"


def summary_cells(row: Mapping[str, Any]) -> list[Any]:
    """The cells of one summary row, in the order of :data:`SUMMARY_COLUMNS`."""
    slope = "nan" if math.isnan(row["slope"]) else f"{row['slope']:.2f}"
    return [
        row["agent"],
        row["seeds"],
        _pm(row, "R_T4"),
        _pm(row, "R_T2"),
        _pm(row, "R_T"),
        _pm(row, "R_T_over_T", 3),
        f"{slope} (sd {row['slope_sd']:.2f})",
        _pm(row, "cpu_s"),
    ]


def summary_table(rows: list[dict[str, Any]], title: str = "") -> Any:
    """A :class:`paperlab_core.results.Table` of the summary rows (env first)."""
    from paperlab_core.results import Table

    table = Table(["env", "V*_1(μ)", *SUMMARY_COLUMNS], formats={"V*_1(μ)": ".3f"}, title=title)
    for row in rows:
        table.add(row["env"], row["v_star"], *summary_cells(row))
    return table


def summary_markdown(rows: list[dict[str, Any]], header: str = "") -> str:
    lines = [header] if header else []
    for env in dict.fromkeys(r["env"] for r in rows):
        env_rows = [r for r in rows if r["env"] == env]
        lines += [
            f"**{env}** (V*_1(μ) = {env_rows[0]['v_star']:.3f}, {env_rows[0]['seeds']} seeds)",
            "",
            "| " + " | ".join(SUMMARY_COLUMNS) + " |",
            "|" + "---|" * len(SUMMARY_COLUMNS),
        ]
        lines += ["| " + " | ".join(map(str, summary_cells(r))) + " |" for r in env_rows]
        lines.append("")
    return "\n".join(lines)


def plot_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], env: str, path: Path) -> None:
    """Mean ± 1 sd cumulative regret per agent (``agent → (t, curves (seeds, len(t)))``), with a log–log inset
    and the two-point slopes of the seed-mean curves in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paperlab_core.logging import atomic_open

    fig, ax = plt.subplots(figsize=(7, 4.5))
    inset = ax.inset_axes((0.08, 0.5, 0.35, 0.42))
    for agent, (t, stacked) in curves.items():
        mean, sd = stacked.mean(0), stacked.std(0)
        T = int(t[-1])
        quarter = float(np.interp(T / 4, t, mean))
        slope = slope_between(quarter, float(mean[-1]))
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
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def plot_env(results: Results, env: str, path: Path) -> None:
    """:func:`plot_curves` of the full per-episode curves of one env."""
    curves = {}
    for agent in dict.fromkeys(agent for (e, agent, _) in results if e == env):
        stacked = np.stack(
            [np.cumsum(r.inst_regret) for (e, a, _), r in results.items() if e == env and a == agent]
        )
        curves[agent] = (np.arange(1, stacked.shape[1] + 1), stacked)
    plot_curves(curves, env, path)


def write_study(
    results: Results,
    out: Path,
    elapsed_s: float,
    command: str,
    machine: str = "",
    seeds: list[int] | None = None,
) -> list[dict]:
    """Every output file of a regret study (see the module docstring); returns the summary rows."""
    from paperlab_core.logging import write_json_atomic, write_text_atomic
    from paperlab_core.results import results_record

    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results)
    write_text_atomic(out / "regret.csv", regret_csv_text(results))
    write_text_atomic(out / "summary.csv", summary_csv_text(rows))
    header = f"Regret study (`{command}`); wall time {elapsed_s:.1f} s.\n"
    write_text_atomic(out / "summary.md", summary_markdown(rows, header))
    write_json_atomic(out / "summary.json", {"rows": rows, "wall_s": elapsed_s, "command": command})
    records = [
        {
            "key": f"{env}/{agent}/seed{seed}",
            "params": {"env": env, "agent": agent, "seed": seed},
            "result": run_summary(res),
        }
        for (env, agent, seed), res in results.items()
    ]
    document = results_record(
        command, machine, seeds, {"summary": summary_table(rows)}, records, wall_s=round(elapsed_s, 3)
    )
    write_json_atomic(out / "results.json", document)
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


def regret(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """``gec-rl regret``: envs × agents × seeds; writes regret.csv, summary.*, results.json and one PNG per env."""
    from paperlab_core.runtime import environment_line

    envs, agents, seeds = list(args.envs), list(args.agents), list(args.seeds)
    T, H = args.data_episodes, args.data_horizon
    validate_study(envs, agents, T, H)
    start = time.perf_counter()
    results = run_study(envs, agents, seeds, T, H, args.workers)
    elapsed = time.perf_counter() - start
    rows = write_study(results, run.dir, elapsed, run.command, environment_line(run.env), seeds)
    print(summary_markdown(rows, f"Regret study (`{run.command}`); wall time {elapsed:.1f} s.\n"))
    return {"study_wall_s": round(elapsed, 3), "jobs": len(results)}
