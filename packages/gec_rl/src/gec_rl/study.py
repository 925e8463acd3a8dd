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
CSV_FIELDS = (
    "env", "agent", "seed", "episode", "inst_regret", "cum_regret", "v_star", "v_pi", "v_f", "optimism_gap",
    "prediction_error", "loss", "train_error", "cpu_s", "wall_s",
)  # fmt: skip
DECOMPOSITION_COLUMNS = (
    "agent", "seeds", "R(T)", "Σ optimism gap", "Σ prediction error", "Σ gap ≤ 0 (seeds)", "in-sample loss at T",
    "Σ training error", "d̂ (no burn-in)", "d̂ (with burn-in)", "d bound",
)  # fmt: skip
SUMMARY_COLUMNS = ("agent", "seeds", "R(T/4)", "R(T/2)", "R(T)", "R(T)/T", "slope T/4→T", "CPU s")
CURVE_POINTS = 20  # cumulative regret kept at T/20, 2T/20, ..., T in records (enough for the plots)

Results = dict[tuple[str, str, int], RunResult]


def _job(args: tuple[str, str, int, int, int]) -> tuple[tuple[str, str, int], RunResult]:
    """One job of the pool (module level so that it pickles)."""
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
        gap, pred = res.optimism_gap, res.prediction_error
        for t in range(len(cum)):
            floats = (res.inst_regret[t], cum[t], res.v_star, res.v_pi[t], res.model_value[t], gap[t], pred[t],
                      res.loss[t], res.train_error[t])  # fmt: skip
            writer.writerow(
                [env, agent, seed, t + 1, *(repr(float(x)) for x in floats), f"{res.cpu_s[t]:.4f}",
                 f"{res.wall_s[t]:.4f}"]
            )  # fmt: skip
    return buffer.getvalue()


def curve_points(T: int) -> list[int]:
    """Episodes (1-based) at which records keep the cumulative regret: T/20, 2T/20, ..., T."""
    return sorted({max(1, round(k * T / CURVE_POINTS)) for k in range(1, CURVE_POINTS + 1)})


def _finite_or_none(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def decomposition_summary(res: RunResult, H: int) -> dict[str, Any]:
    """Σ optimism gap, Σ prediction error (spec §2.1), the final in-sample loss, Σ training error and the
    empirical GEC (:func:`gec_rl.theory.gec_estimate`, a lower bound on the realised sequence); ``None`` where
    the agent has no such quantity."""
    from gec_rl.theory import gec_estimate

    gap, pred = res.optimism_gap, res.prediction_error
    out: dict[str, Any] = {"gap_sum": None, "pred_err_sum": None, "loss_T": None, "train_error_sum": None,
                           "gec_hat0": None, "gec_hat": None}  # fmt: skip
    if np.all(np.isfinite(res.model_value)):
        out["gap_sum"], out["pred_err_sum"] = float(gap.sum()), float(pred.sum())
        if np.all(np.isfinite(res.train_error)):
            out["train_error_sum"] = float(res.train_error.sum())
            out["gec_hat0"] = _finite_or_none(gec_estimate(pred, res.train_error, H, burn_in=False))
            out["gec_hat"] = _finite_or_none(gec_estimate(pred, res.train_error, H))
    out["loss_T"] = _finite_or_none(float(res.loss[-1]))
    return out


def run_summary(res: RunResult, H: int | None = None) -> dict[str, Any]:
    """The numbers one job contributes to the summary (JSON-ready: NaN becomes ``None``)."""
    cum = np.cumsum(res.inst_regret)
    out: dict[str, Any] = summarise(cum)
    if math.isnan(out["slope"]):
        out["slope"] = None
    points = curve_points(len(cum))
    out.update(
        {
            "v_star": float(res.v_star),
            "cpu_s": float(res.cpu_s[-1]),
            "wall_s": float(res.wall_s[-1]),
            "curve_t": points,
            "curve": [float(cum[t - 1]) for t in points],
        }
    )
    if H is not None:
        out.update(decomposition_summary(res, H))
        if out["gap_sum"] is not None:
            gap, pred = np.cumsum(res.optimism_gap), np.cumsum(res.prediction_error)
            out["curve_gap"] = [float(gap[t - 1]) for t in points]
            out["curve_pred"] = [float(pred[t - 1]) for t in points]
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
        for key in ("gap_sum", "pred_err_sum", "loss_T", "train_error_sum", "gec_hat0", "gec_hat"):
            values = [r.get(key) for r in runs]
            if values and all(v is not None for v in values):
                row[key], row[f"{key}_sd"] = _mean_sd(values)
            else:
                row[key], row[f"{key}_sd"] = None, None
        row["gap_nonpositive_seeds"] = (
            None if row["gap_sum"] is None else sum(r["gap_sum"] <= 0 for r in runs)
        )
        rows.append(row)
    return rows


def summary_rows(results: Results, H: int | None = None) -> list[dict[str, Any]]:
    """One row per (env, agent) of a study's results (see :func:`aggregate_rows`)."""
    return aggregate_rows((env, agent, run_summary(res, H)) for (env, agent, _), res in results.items())


def _cell(row: Mapping[str, Any], key: str, digits: int = 1) -> str:
    return "—" if row.get(key) is None else _pm(row, key, digits)


def decomposition_table(rows: list[dict[str, Any]], H: int, title: str = "") -> Any:
    """Σ optimism gap and Σ prediction error beside R(T), the in-sample loss, the training error and the
    empirical GEC next to the tabular bound H·S·A·log(1 + T²) (rows of :func:`aggregate_rows` with ``S``, ``A``
    and ``T`` filled in)."""
    from gec_rl.theory import gec_bound_tabular
    from paperlab_core.results import Table

    table = Table(["env", *DECOMPOSITION_COLUMNS], title=title)
    for row in rows:
        gap_ok = (
            "—"
            if row.get("gap_nonpositive_seeds") is None
            else f"{row['gap_nonpositive_seeds']}/{row['seeds']}"
        )
        bound = gec_bound_tabular(H, row["S"], row["A"], row["T"]) if "S" in row else math.nan
        table.add(row["env"], row["agent"], row["seeds"], _pm(row, "R_T"), _cell(row, "gap_sum"),
                  _cell(row, "pred_err_sum"), gap_ok, _cell(row, "loss_T"), _cell(row, "train_error_sum"),
                  _cell(row, "gec_hat0"), _cell(row, "gec_hat"), f"{bound:.0f}")  # fmt: skip
    return table


def add_env_sizes(rows: list[dict[str, Any]], T: int, H: int) -> list[dict[str, Any]]:
    """Fill in S, A and T of each row's env (for the GEC bound)."""
    from gec_rl.envs import make_env

    for row in rows:
        mdp = make_env(row["env"], horizon=H)
        row.update({"S": mdp.S, "A": mdp.A, "T": T})
    return rows


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


def plot_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    env: str,
    path: Path,
    extra: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> None:
    """Mean ± 1 sd cumulative regret per agent (``agent → (t, curves (seeds, len(t)))``), with a log–log inset
    and the two-point slopes of the seed-mean curves in the legend. ``extra`` (``"gap"``/``"pred"`` → agent →
    (seeds, len(t))) adds panels of the cumulative optimism gap Σ(V* − V_f) and prediction error Σ(V_f − V^π)
    (spec §2.1) for the agents that have a hypothesis value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from paperlab_core.logging import atomic_open

    panels = [key for key in ("gap", "pred") if extra and extra.get(key)]
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(7 + 4.5 * len(panels), 4.5), squeeze=False)
    ax = axes[0, 0]
    inset = ax.inset_axes((0.08, 0.5, 0.35, 0.42))
    colours = {}
    for agent, (t, stacked) in curves.items():
        mean, sd = stacked.mean(0), stacked.std(0)
        T = int(t[-1])
        quarter = float(np.interp(T / 4, t, mean))
        slope = slope_between(quarter, float(mean[-1]))
        (line,) = ax.plot(t, mean, label=f"{agent} (slope {slope:.2f})")
        colours[agent] = line.get_color()
        ax.fill_between(t, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        positive = mean > 0
        inset.loglog(t[positive], mean[positive], color=line.get_color())
    ax.set_xlabel("episode t")
    ax.set_ylabel("cumulative pseudo-regret R(t)")
    ax.set_title(f"{env}: mean ± 1 sd over seeds")
    ax.legend(loc="lower right", fontsize=8)
    inset.set_title("log–log", fontsize=8)
    inset.tick_params(labelsize=6)
    titles = {"gap": "Σ optimism gap V* − V_f (≤ 0: optimistic)", "pred": "Σ prediction error V_f − V^π"}
    for panel, key in zip(axes[0, 1:], panels, strict=True):
        for agent, stacked in extra[key].items():
            t = curves[agent][0]
            mean, sd = stacked.mean(0), stacked.std(0)
            panel.plot(t, mean, color=colours.get(agent), label=agent)
            panel.fill_between(t, mean - sd, mean + sd, color=colours.get(agent), alpha=0.2)
        panel.axhline(0.0, color="black", lw=0.6)
        panel.set_xlabel("episode t")
        panel.set_title(titles[key], fontsize=10)
        panel.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def plot_env(results: Results, env: str, path: Path) -> None:
    """:func:`plot_curves` of the full per-episode curves of one env (regret, Σ gap, Σ prediction error)."""
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    extra: dict[str, dict[str, np.ndarray]] = {"gap": {}, "pred": {}}
    for agent in dict.fromkeys(agent for (e, agent, _) in results if e == env):
        runs = [r for (e, a, _), r in results.items() if e == env and a == agent]
        stacked = np.stack([np.cumsum(r.inst_regret) for r in runs])
        curves[agent] = (np.arange(1, stacked.shape[1] + 1), stacked)
        if all(np.all(np.isfinite(r.model_value)) for r in runs):
            extra["gap"][agent] = np.stack([np.cumsum(r.optimism_gap) for r in runs])
            extra["pred"][agent] = np.stack([np.cumsum(r.prediction_error) for r in runs])
    plot_curves(curves, env, path, extra)


def write_study(
    results: Results,
    out: Path,
    elapsed_s: float,
    command: str,
    machine: str = "",
    seeds: list[int] | None = None,
    H: int | None = None,
    T: int | None = None,
) -> list[dict]:
    """Every output file of a regret study (see the module docstring); returns the summary rows."""
    from paperlab_core.logging import write_json_atomic, write_text_atomic
    from paperlab_core.results import results_record

    out.mkdir(parents=True, exist_ok=True)
    rows = summary_rows(results, H)
    if H is not None and T is not None:
        add_env_sizes(rows, T, H)
    write_text_atomic(out / "regret.csv", regret_csv_text(results))
    write_text_atomic(out / "summary.csv", summary_csv_text(rows))
    header = f"Regret study (`{command}`); wall time {elapsed_s:.1f} s.\n"
    write_text_atomic(out / "summary.md", summary_markdown(rows, header))
    write_json_atomic(out / "summary.json", {"rows": rows, "wall_s": elapsed_s, "command": command})
    records = [
        {
            "key": f"{env}/{agent}/seed{seed}",
            "params": {"env": env, "agent": agent, "seed": seed},
            "result": run_summary(res, H),
        }
        for (env, agent, seed), res in results.items()
    ]
    tables = {"summary": summary_table(rows)}
    if H is not None and T is not None:
        tables["decomposition"] = decomposition_table(rows, H, f"Regret decomposition (T = {T}, H = {H})")
    document = results_record(command, machine, seeds, tables, records, wall_s=round(elapsed_s, 3))
    write_json_atomic(out / "results.json", document)
    for env in dict.fromkeys(env for (env, _, _) in results):
        plot_env(results, env, out / f"regret_{env}.png")
    return rows


def write_run_outputs(
    run_dir: str | Path, history: list[tuple[int, Any]], v_star: float, metrics: dict
) -> None:
    """``regret.csv`` (per-episode regret, values and the decomposition terms) and metrics.json of one
    ``gec-rl train`` run; ``history`` holds (t, :class:`gec_rl.regret.EpisodeRecord`)."""
    from paperlab_core.logging import write_metrics, write_text_atomic

    lines = ["episode,inst_regret,cum_regret,v_pi,v_f,optimism_gap,prediction_error,loss,train_error"]
    cum = 0.0
    for t, rec in history:
        inst = v_star - rec.v_pi
        cum += inst
        values = (inst, cum, rec.v_pi, rec.model_value, v_star - rec.model_value, rec.model_value - rec.v_pi,
                  rec.loss, rec.train_error)  # fmt: skip
        lines.append(f"{t}," + ",".join(repr(float(v)) for v in values))
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
    rows = write_study(results, run.dir, elapsed, run.command, environment_line(run.env), seeds, H, T)
    if getattr(args, "decompose", False):
        print(decomposition_table(rows, H, f"Regret decomposition (`{run.command}`)").to_markdown())
    else:
        print(summary_markdown(rows, f"Regret study (`{run.command}`); wall time {elapsed:.1f} s.\n"))
    return {"study_wall_s": round(elapsed, 3), "jobs": len(results)}


def decompose(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """``gec-rl decompose``: the regret study with the decomposition table printed (spec §2.1–2.2): per agent
    R(T), Σ optimism gap, Σ prediction error, the in-sample loss, the training error and the empirical GEC."""
    args.decompose = True
    return regret(args, run)
