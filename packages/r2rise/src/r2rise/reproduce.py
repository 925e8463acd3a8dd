"""``r2rise reproduce``: the planted CartPole experiment answering Q1, Q2 and Q3 (spec §5) as a grid of cells.

One cell per planted seed runs the whole chain on that seed's demonstrations: ``bc_mlp`` R2RISE (planted AUC of
every estimator, Q1 spread and permutation test), Q2 deletion by the ``centred`` map (top-k / random / bottom-k,
8 retrainings each), and Q3 (``bc_linear`` on the same masks: rank agreement, AUC, cross-use retraining). The full
mode adds cells for clean CartPole, MountainCar and Acrobot (reported, not gated). Tables and the acceptance checks
are built from the records alone, so ``--shard K/N`` runs and ``--merge`` give the same tables as a whole run.
Per-seed arrays and figures go to ``<out>/seed<S>/``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.experiment import Cell, run_experiment
from paperlab_core.logging import write_json_atomic
from paperlab_core.results import Table
from paperlab_core.verbs import Run
from r2rise import plots
from r2rise.demos import Demonstrations, make_demos, save_demos
from r2rise.estimators import minmax, rank_agreement
from r2rise.explain import (
    ESTIMATORS,
    ExplainConfig,
    deletion_experiment,
    retrain_and_evaluate,
    run_r2rise,
    save_run,
    usable_blocks,
)
from r2rise.masks import deletion_grid

QUICK_FRACTIONS = (0.2, 0.4)
FULL_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
RETRAIN_SEEDS = 8
"""Retrainings per (deletion mode, fraction) in Q2 and per arm of the Q3 cross-use experiment."""
EXTRA_SETTINGS = ("CartPole-v1 clean", "MountainCar-v0", "Acrobot-v1")
MAX_RETURN = 500.0
"""CartPole-v1's maximum return: the bottom-k tolerance of spec §6.10 is 5 % of it."""


def cross_use(
    demos: Demonstrations, maps_a: dict, cfg: ExplainConfig, learner_b: str, seeds: int
) -> dict[str, Any]:
    """Retrain learner B with learner A's top 50 % blocks removed vs a random 50 % removed (official Q3 eval)."""
    usable = usable_blocks(demos, cfg.block)
    scores = maps_a["centred_block"]
    grids = [deletion_grid(scores, usable, 0.5, "top")] * seeds
    grids += [deletion_grid(scores, usable, 0.5, "random", seed=1000 + s) for s in range(seeds)]
    members = np.concatenate([np.arange(seeds), np.arange(seeds)]) + 200_000
    returns = retrain_and_evaluate(demos, np.stack(grids), cfg, members, learner_b).mean(axis=1)
    return {
        "top50_removed": float(returns[:seeds].mean()),
        "random50_removed": float(returns[seeds:].mean()),
        "seeds": seeds,
    }


def planted_cell(params: dict[str, Any], out: Path, device: str) -> dict[str, Any]:
    """Planted AUC + Q1, Q2 deletion and Q3 on the planted demonstrations of one seed."""
    seed = int(params["seed"])
    cfg = ExplainConfig(n_masks=params["n_masks"], dtype=params["dtype"], seed=seed, device=device)
    folder = out / f"seed{seed}"
    demos = make_demos("CartPole-v1", 5, 200, 0.1, 0.45, cfg.block, seed)
    save_demos(demos, folder / "demos.npz")
    res_a = run_r2rise(demos, cfg)
    info_a = save_run(res_a, demos, folder)

    deletion = deletion_experiment(
        demos, res_a.maps["centred_block"], cfg, params["fractions"], seeds=RETRAIN_SEEDS
    )
    write_json_atomic(folder / "deletion.json", deletion)
    curves = {
        m: [(r["fraction"], r["mean"], r["std"]) for r in deletion[m]] for m in ("top", "random", "bottom")
    }
    plots.deletion_curves(
        curves, folder / "q2_deletion_curves.png", f"Q2: deletion by centred map, seed {seed}"
    )

    cfg_b = replace(cfg, learner="bc_linear")
    res_b = run_r2rise(demos, cfg_b, grids=res_a.grids)
    info_b = save_run(res_b, demos, folder, prefix="bc_linear_")
    usable = usable_blocks(demos, cfg.block)
    agreement = rank_agreement(res_a.maps["centred_block"][usable], res_b.maps["centred_block"][usable])
    plots.scatter(
        res_a.maps["centred_block"],
        res_b.maps["centred_block"],
        folder / "q3_scatter.png",
        ("bc_mlp centred", "bc_linear centred"),
        "Q3: block importance",
        demos.corrupted,
    )
    diff = np.abs(minmax(res_a.maps["centred_frame"]) - minmax(res_b.maps["centred_frame"]))
    plots.heatmap(
        diff,
        folder / "q3_abs_diff.png",
        "|norm(bc_mlp) − norm(bc_linear)| (centred)",
        demos.valid,
        demos.corrupted,
        cfg.block,
    )
    return {
        "corrupted_blocks": info_a["corrupted_blocks"],
        "auc": info_a["planted_auc"],
        "q1_returns": info_a["q1_returns"],
        "q1_permutation_p": info_a["q1_permutation"]["p_value"],
        "q2": {m: [{k: r[k] for k in ("fraction", "mean", "std")} for r in deletion[m]] for m in curves},
        "q2_returns": {m: [r["returns"] for r in deletion[m]] for m in curves},
        "q3": {
            **agreement,
            "auc_bc_mlp": info_a["planted_auc"]["centred"],
            "auc_bc_linear": info_b["planted_auc"]["centred"],
            "mean_return_bc_mlp": float(res_a.returns.mean()),
            "mean_return_bc_linear": float(res_b.returns.mean()),
            "cross_use": cross_use(demos, res_a.maps, cfg_b, "bc_linear", RETRAIN_SEEDS),
        },
    }


def extra_cell(params: dict[str, Any], out: Path, device: str) -> dict[str, Any]:
    """Q1 on clean CartPole, MountainCar or Acrobot demonstrations (reported, not gated)."""
    setting = params["setting"]
    cfg = ExplainConfig(n_masks=params["n_masks"], dtype=params["dtype"], seed=params["seed"], device=device)
    if setting == "CartPole-v1 clean":
        demos = make_demos("CartPole-v1", 5, 200, 0.1, 0.0, cfg.block, cfg.seed)
    else:
        demos = make_demos(setting, 5, None, 0.1, 0.0, cfg.block, cfg.seed)
    info = save_run(run_r2rise(demos, cfg), demos, out / setting.replace(" ", "-"))
    return {"q1_returns": info["q1_returns"], "q1_permutation_p": info["q1_permutation"]["p_value"]}


def cells_for(quick: bool, seeds: list[int], n_masks: int, dtype: str) -> list[Cell]:
    mode = "quick" if quick else "full"
    fractions = list(QUICK_FRACTIONS if quick else FULL_FRACTIONS)
    common = {"mode": mode, "n_masks": n_masks, "dtype": dtype}
    prefix = f"{mode}/N{n_masks}-{dtype}"
    cells = [
        Cell(f"{prefix}/planted/seed{s}", {**common, "kind": "planted", "seed": s, "fractions": fractions})
        for s in seeds
    ]
    if not quick:
        cells += [
            Cell(f"{prefix}/extra/{name}", {**common, "kind": "extra", "setting": name, "seed": 0})
            for name in EXTRA_SETTINGS
        ]
    return cells


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The tables (planted/Q1, Q2, Q3, checks, and the extra settings in full mode) from the records alone."""
    planted = sorted(
        (r for r in records if r["params"]["kind"] == "planted"), key=lambda r: r["params"]["seed"]
    )
    extra = [r for r in records if r["params"]["kind"] == "extra"]
    tables: dict[str, Any] = {}
    if planted:
        tables.update(_planted_tables(planted))
    if extra:
        table = Table(
            ["setting", "return mean", "min", "max", "Q1 permutation p"],
            formats={"return mean": ".1f", "min": ".1f", "max": ".1f", "Q1 permutation p": ".4f"},
            title="Other settings (Q1 only; reported, not gated)",
        )
        order = {name: i for i, name in enumerate(EXTRA_SETTINGS)}
        for r in sorted(extra, key=lambda r: order.get(r["params"]["setting"], 99)):
            q = r["result"]["q1_returns"]
            table.add(r["params"]["setting"], q["mean"], q["min"], q["max"], r["result"]["q1_permutation_p"])
        tables["extra"] = table
    params = (planted or extra)[0]["params"] if (planted or extra) else {}
    tables["text"] = (
        f"CartPole-v1 planted: 5 demonstrations × 200 frames, ε_exec 0.1, 45 % of 10-frame blocks label-flipped; "
        f"N = {params.get('n_masks')} masks, keep p = 0.5, bc_mlp (4 → 32 tanh → 2, Adam 1e-2, 200 full-batch "
        f"steps, {params.get('dtype')}), return = mean of 4 greedy episodes; ridge λ = 1.0. Q2/Q3 retrain "
        f"{RETRAIN_SEEDS} times per arm."
    )
    return tables


def _planted_tables(planted: list[dict[str, Any]]) -> dict[str, Table]:
    auc_columns = [f"AUC {n}" for n in ESTIMATORS]
    main = Table(
        ["seed", "corrupted blocks", *auc_columns, "return mean", "min", "max", "Q1 permutation p"],
        formats={
            **{c: ".3f" for c in auc_columns},
            "return mean": ".1f",
            "min": ".1f",
            "max": ".1f",
            "Q1 permutation p": ".4f",
        },
        title="Planted AUC (clean block ranked above corrupted block) and Q1",
    )
    for r in planted:
        res, q = r["result"], r["result"]["q1_returns"]
        main.add(
            r["params"]["seed"], res["corrupted_blocks"], *(res["auc"][n] for n in ESTIMATORS),
            q["mean"], q["min"], q["max"], res["q1_permutation_p"],
        )  # fmt: skip
    mean_auc = {n: _mean([r["result"]["auc"][n] for r in planted]) for n in ESTIMATORS}
    main.add("mean", None, *(mean_auc[n] for n in ESTIMATORS), None, None, None, None)

    fractions = [row["fraction"] for row in planted[0]["result"]["q2"]["top"]]
    q2 = Table(
        ["removed", "top-k", "random", "bottom-k"],
        title=f"Q2 deletion by the centred bc_mlp map: mean ± std return over {len(planted)} seed(s) × "
        f"{RETRAIN_SEEDS} retrainings",
    )
    q2_mean: dict[tuple[str, float], float] = {}
    for i, fraction in enumerate(fractions):
        cells = []
        for mode in ("top", "random", "bottom"):
            values = [v for r in planted for v in r["result"]["q2_returns"][mode][i]]
            q2_mean[(mode, fraction)] = _mean(values)
            cells.append(f"{np.mean(values):.1f} ± {np.std(values):.1f}")
        q2.add(f"{fraction:.0%}", *cells)

    q3_columns = ["Spearman ρ", "Kendall τ", "top-20 % Jaccard", "AUC bc_mlp", "AUC bc_linear",
                  "return bc_mlp", "return bc_linear", "bc_linear −top 50 %", "bc_linear −random 50 %"]  # fmt: skip
    q3 = Table(
        ["seed", *q3_columns],
        formats={**{c: ".3f" for c in q3_columns[:5]}, **{c: ".1f" for c in q3_columns[5:]}},
        title="Q3: bc_mlp vs bc_linear on the same masks (centred block maps); cross-use: bc_linear retrained "
        "without bc_mlp's top 50 % blocks vs a random 50 %",
    )
    rows = []
    for r in planted:
        q = r["result"]["q3"]
        row = [q["spearman"], q["kendall"], q["top_jaccard"], q["auc_bc_mlp"], q["auc_bc_linear"],
               q["mean_return_bc_mlp"], q["mean_return_bc_linear"], q["cross_use"]["top50_removed"],
               q["cross_use"]["random50_removed"]]  # fmt: skip
        rows.append(row)
        q3.add(r["params"]["seed"], *row)
    q3.add("mean", *(float(np.mean(col)) for col in zip(*rows, strict=True)))

    spearman = _mean([r["result"]["q3"]["spearman"] for r in planted])
    checks = Table(
        ["check (spec §6)", "value", "threshold", "passed"],
        formats={"value": ".3f", "threshold": ".3f"},
        title="Acceptance checks (means over the seeds)",
    )
    checks.add("9: planted AUC, centred", mean_auc["centred"], 0.75, mean_auc["centred"] >= 0.75)
    if 0.2 in fractions:
        top, rnd, bottom = (q2_mean[(m, 0.2)] for m in ("top", "random", "bottom"))
        checks.add("10: return, top 20 % removed ÷ random 20 % removed", top / rnd, 0.5, top <= 0.5 * rnd)
        tolerance = 0.05 * MAX_RETURN
        checks.add(
            "10: return, bottom 20 % removed − random 20 % removed", bottom - rnd, -tolerance,
            bottom >= rnd - tolerance,
        )  # fmt: skip
    checks.add("11: Q3 Spearman ρ", spearman, 0.3, spearman > 0.3)
    return {"main": main, "q2": q2, "q3": q3, "checks": checks}


STUDIES = ("planted", "protocols", "families")
"""``--study``: the spec §5 experiment (default) or an issue-#19 study (``r2rise.studies``)."""


def summarize_any(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Dispatch on the records' study (records of the default study carry none)."""
    from r2rise import studies

    study = records[0]["params"].get("study", "planted") if records else "planted"
    if study == "protocols":
        return studies.summarize_protocols(records)
    if study == "families":
        return studies.summarize_families(records)
    return summarize(records)


def reproduce(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``r2rise reproduce``: the planted experiment (and, in full mode, the extra settings), or with ``--study`` the
    protocols/families studies, via :func:`paperlab_core.experiment.run_experiment`."""
    from r2rise import studies

    seeds = args.seeds or [0, 1, 2]
    study = getattr(args, "study", "planted")
    if study == "protocols":
        cells = studies.protocol_cells(seeds, args.n_masks, args.dtype)
    elif study == "families":
        cells = studies.family_cells(seeds, args.n_masks, args.dtype)
    else:
        cells = cells_for(args.quick, seeds, args.n_masks, args.dtype)
    device = str(run.device)

    def run_cell(cell: Cell) -> dict[str, Any]:
        kind, params, out = cell.params["kind"], dict(cell.params), run.path("")
        if kind == "protocol":
            return studies.protocol_cell(params, out, device, RETRAIN_SEEDS)
        if kind == "family":
            return studies.family_cell(params, out, device)
        if kind == "family_bco":
            return studies.family_bco_cell(params, out, device)
        return (planted_cell if kind == "planted" else extra_cell)(params, out, device)

    return run_experiment(run, args, cells, run_cell, summarize_any)
