"""``dfme reproduce``: the DFME benchmark's experimental axes on the synthetic benchmark (spec §5).

Tables (each cell of the grid = one configuration × seed × fold, so ``--shard``/``--merge`` split any table):

- gate: R3D-18-small with ``ce`` and ``cb`` on ``tim_on_off`` (the two gated claims: UF1 ≥ the frozen threshold,
  and ``cb`` improves UF1 over ``ce`` on the long-tailed split, seed mean);
- A (models): R3D-18, MC3-18, R(2+1)D-18, S3D-lite (width 0.25, ``tim_on_off``, T = 16) and STSTNet
  (``onset_apex_pair``, Farnebäck) × {ce, cb}, plus R3D-18 on normalised frames (the published input);
- B (imbalance): R3D-18-small × the 7 imbalance remedies; C (sampling): R3D-18-small × every strategy except
  ``onset_apex_pair``, ``ce``; D (data size): R3D-18-small, ``cb``, 25/50/100 % of each fold's training subjects;
- AU: R3D-18-small with the multi-label head (macro-F1 over AUs, per-AU F1).

Metrics are computed from the per-sample predictions stored in the records: UF1/UAR/ACC on the predictions
concatenated over the folds (default) and the per-fold mean, then mean ± std over seeds. Modes: ``--quick``
(3 of the 10 folds, 1 seed, 3 epochs, all tables, no gating); default (all 10 folds; gate with 3 seeds, tables with 1);
``--full`` (every table with 3 seeds, more epochs; meant for a GPU).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dfme.folds import fit_fold, load_preset
from dfme.labels import EMOTIONS
from dfme.metrics import aggregate_folds
from dfme.sources import CACHE_VERSION
from paperlab_core.errors import ConfigError
from paperlab_core.experiment import Cell, run_experiment
from paperlab_core.results import Table
from paperlab_core.verbs import Run

UF1_THRESHOLD = 0.45
"""Frozen gate (calibrated once on the synthetic benchmark, see docs/lab-notebook.md): the seed-mean concatenated
UF1 of R3D-18-small with ``ce`` on the evaluated folds; chance (always the majority class) is 0.066."""
QUICK_FOLDS = (0, 1, 2)
MODELS_A = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d_lite", "ststnet")
IMBALANCE_B = ("ce", "inv_freq", "cb", "focal", "balanced_sampler", "ldam_drw", "logit_adjust")
# the class-weighted losses whose batch reduction `--weight-reduction` sets (0.4.0)
WEIGHTED = ("inv_freq", "cb")
SAMPLING_C = (
    "tim_on_off", "uniform_on_off", "tim_on_apex", "uniform_on_apex", "apex_window", "fixed_dt", "segment_random",
    "uniform_full",
)  # fmt: skip
FRACTIONS_D = (0.25, 0.5, 1.0)
EPOCHS = {"quick": 3, "default": 6, "full": 12}
SPEC_LR = 1e-3
"""The spec's training default (§2.7: AdamW, lr 1e-3, weight decay 1e-4, batch 16, cosine): every cell trains at
this lr unless ``--lr`` says otherwise (``default.yaml``'s 3e-3 is the CPU-scale default of ``dfme train`` only).
Records made before 0.3.0 trained at the preset's 3e-3; their configuration keys carry no ``-lr`` suffix."""
TABLES = ("gate", "A", "B", "C", "D", "au")


def config_key(params: dict[str, Any]) -> str:
    """A readable, unique name of a training configuration (without seed and fold)."""
    parts = [params["model"], params["imbalance"], params["sampling"], params["input"]]
    if params["fraction"] != 1.0:
        parts.append(f"frac{params['fraction']:g}")
    if params["task"] != "emotion":
        parts.append(params["task"])
    lr = f"-lr{params['lr']:g}" if "lr" in params else ""
    # weighted-mean keys keep the ≤ 0.3 form
    mean = "-rmean" if params.get("weight_reduction") == "mean" else ""
    return "-".join(parts) + f"-e{params['epochs']}" + lr + mean


def table_rows(tables: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per table, its rows as configurations (shared configurations train once)."""
    base = {"model": "r3d_18", "imbalance": "ce", "sampling": "tim_on_off", "input": "onset_diff", "fraction": 1.0,
            "task": "emotion"}  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {}
    if "gate" in tables:
        rows["gate"] = [{**base, "imbalance": m} for m in ("ce", "cb")]
    if "A" in tables:
        rows["A"] = [
            {**base, "model": m, "imbalance": i, **({"sampling": "onset_apex_pair", "input": "flow"} if m == "ststnet" else {})}
            for m in MODELS_A for i in ("ce", "cb")
        ] + [{**base, "input": "frames"}]  # fmt: skip
    if "B" in tables:
        rows["B"] = [{**base, "imbalance": m} for m in IMBALANCE_B]
    if "C" in tables:
        rows["C"] = [{**base, "sampling": s} for s in SAMPLING_C]
    if "D" in tables:
        rows["D"] = [{**base, "imbalance": "cb", "fraction": f} for f in FRACTIONS_D]
    if "au" in tables:
        rows["au"] = [{**base, "task": "au"}]
    return rows


def _config_sets_lr(config: str) -> bool:
    """Whether the preset or YAML file ``config`` itself sets ``model.lr`` (not inherited from default.yaml)."""
    import yaml

    from paperlab_core.cli import resolve_config

    extra = yaml.safe_load(Path(resolve_config(config, "dfme")).read_text(encoding="utf-8")) or {}
    return isinstance(extra.get("model"), dict) and "lr" in extra["model"]


def plan(args: argparse.Namespace) -> tuple[list[Cell], dict[str, Any]]:
    mode = "full" if getattr(args, "full", False) else "quick" if args.quick else "default"
    folds = list(QUICK_FOLDS) if mode == "quick" else list(range(10))
    if getattr(args, "folds", None):
        try:
            folds = sorted({int(f) for f in args.folds})
        except ValueError:
            raise ConfigError(f"--folds takes fold numbers 0..9, got {','.join(args.folds)}") from None
        if not all(0 <= f < 10 for f in folds):
            raise ConfigError("--folds takes fold numbers 0..9")
    tables = list(getattr(args, "tables", None) or TABLES)
    preset = getattr(args, "config", None)
    suffix = ""
    lr = getattr(args, "lr", None) or SPEC_LR
    if preset:
        merged = load_preset(preset)
        blob = json.dumps({k: merged.get(k) for k in ("model", "data")}, sort_keys=True, default=str)
        suffix = "-p" + hashlib.sha256(blob.encode()).hexdigest()[:8]
        if getattr(args, "lr", None) is None and _config_sets_lr(preset):  # the user's file wins over SPEC_LR
            lr = float(merged["model"]["lr"])
    epochs = getattr(args, "epochs", None) or EPOCHS[mode]
    reduction = getattr(args, "weight_reduction", None) or "mean"
    rows = table_rows(tables)
    seeds_gate = args.seeds or ([0] if mode == "quick" else [0, 1, 2])
    seeds_tables = args.seeds or ([0, 1, 2] if mode == "full" else [0])
    cells: dict[str, Cell] = {}
    for table, configs in rows.items():
        seeds = seeds_gate if table == "gate" else seeds_tables
        for params in configs:
            params = {**params, "epochs": epochs, "lr": lr, "preset": preset}
            if params["imbalance"] in WEIGHTED:
                params["weight_reduction"] = reduction
            key = config_key(params) + suffix
            for seed in seeds:
                for fold in folds:
                    cell_key = f"{key}/seed{seed}/fold{fold}"
                    cells.setdefault(
                        cell_key, Cell(cell_key, {**params, "config": key, "seed": seed, "fold": fold})
                    )
    return list(cells.values()), {"mode": mode, "folds": folds, "epochs": epochs, "lr": lr, "rows": rows}


def run_cell(params: dict[str, Any], accelerator: str) -> dict[str, Any]:
    preset = load_preset(params.get("preset"))
    model = {**preset["model"], "name": params["model"], "imbalance": params["imbalance"]}
    if "lr" in params:  # records before 0.3.0 trained at the preset's lr
        model["lr"] = params["lr"]
    # records before 0.4.0 trained with the Σw-normalised batch loss
    model["weight_reduction"] = params.get("weight_reduction", "weighted_mean")
    data = {**preset["data"], "sampling": params["sampling"], "fold": params["fold"], "task": params["task"],
            "train_subject_fraction": params["fraction"]}  # fmt: skip
    if params["input"] == "flow":
        data["flow"] = "farneback"
    else:
        data["clip_input"] = params["input"]
    result = fit_fold(model, data, params["epochs"], params["seed"], accelerator)
    keep = ("uf1", "uar", "acc", "confusion", "macro_f1", "micro_f1", "per_au_f1", "fold", "sample_ids", "y_true",
            "y_pred", "wall_s", "align_status")  # fmt: skip
    return {k: v for k, v in result.items() if k in keep}


def reproduce(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    cells, _ = plan(args)
    # records made under another preprocessing version (0.5.0 changed `onset_diff`'s reference frame, 0.5.2 the
    # eye pair of tied cascade boxes) are re-run when a run resumes into their folder, not reused
    settings = {"cache_version": CACHE_VERSION}
    return run_experiment(
        run,
        args,
        cells,
        lambda cell: run_cell(dict(cell.params), run.accelerator),
        lambda r: summarize(r),
        settings=settings,
    )


# --------------------------------------------------------------------------------------------- tables
def _score(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of the concatenated and per-fold-mean scores of one configuration."""
    by_seed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_seed[r["params"]["seed"]].append(r["result"])
    folds = sorted({r["params"]["fold"] for r in records})
    task = records[0]["params"]["task"]
    per_seed = []
    for seed in sorted(by_seed):
        results = by_seed[seed]
        if task == "emotion":
            per_seed.append(aggregate_folds([(x["y_true"], x["y_pred"]) for x in results], len(EMOTIONS)))
        else:
            per_seed.append(_au_concatenated(results))
    out: dict[str, Any] = {"seeds": sorted(by_seed), "folds": folds, "n": len(records)}
    for mode in per_seed[0]:
        for key, value in per_seed[0][mode].items():
            if isinstance(value, float):
                values = [p[mode][key] for p in per_seed]
                out[f"{mode}/{key}"] = (float(np.mean(values)), float(np.std(values)), values)
    if task == "au":  # per AU, mean ± std over the seeds like the summary metrics (≤ 0.5.0: the first seed's)
        names = sorted(per_seed[0]["concatenated"]["per_au_f1"], key=_au_order)
        out["per_au_f1"] = {}
        for name in names:
            values = [p["concatenated"]["per_au_f1"][name] for p in per_seed]
            out["per_au_f1"][name] = (float(np.mean(values)), float(np.std(values)), values)
    return out


def _au_order(name: str) -> tuple[int, str]:
    """AU1, AU2, …, AU10 (numeric order; names without a number last)."""
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else 10**6, name)


def _au_concatenated(results: list[dict[str, Any]]) -> dict[str, Any]:
    from dfme.metrics import au_scores

    names = list(results[0]["per_au_f1"])
    y_true = np.concatenate([np.asarray(r["y_true"]) for r in results])
    y_pred = np.concatenate([np.asarray(r["y_pred"]) for r in results])
    concatenated = au_scores(y_true > 0, y_pred > 0, names)
    per_fold = {k: float(np.mean([r[k] for r in results])) for k in ("macro_f1", "micro_f1")}
    return {"concatenated": concatenated, "per_fold": per_fold}


def _fmt(entry: tuple[float, float, list[float]] | None) -> str | None:
    if entry is None:
        return None
    mean, std, values = entry
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {std:.3f}"


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    by_config: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_config[r["params"]["config"]].append(r)
    scores = {key: _score(rs) for key, rs in by_config.items()}
    params = {key: rs[0]["params"] for key, rs in by_config.items()}
    seeds_of = {key: s["seeds"] for key, s in scores.items()}
    folds_of = {key: s["folds"] for key, s in scores.items()}
    out: dict[str, Any] = {}
    columns = ["UF1", "UAR", "ACC", "UF1 (per-fold mean)", "seeds", "folds"]

    def row_values(key: str) -> list[Any]:
        s = scores[key]
        return [
            _fmt(s.get("concatenated/uf1")), _fmt(s.get("concatenated/uar")), _fmt(s.get("concatenated/acc")),
            _fmt(s.get("per_fold/uf1")), len(seeds_of[key]), len(folds_of[key]),
        ]  # fmt: skip

    def find(**match: Any) -> list[str]:
        return [
            k
            for k, p in params.items()
            if all(p.get(a) == b for a, b in match.items()) and p["task"] == "emotion"
        ]

    def loss_label(key: str) -> str:
        p = params[key]
        legacy = p["imbalance"] in WEIGHTED and p.get("weight_reduction", "weighted_mean") == "weighted_mean"
        return p["imbalance"] + (" (Σw-normalised)" if legacy else "")

    gate = Table(
        ["loss", *columns],
        title="Gate: R3D-18-small, tim_on_off (concatenated over the folds, mean ± std over seeds)",
    )
    for loss in ("ce", "cb"):
        for key in find(
            model="r3d_18", imbalance=loss, sampling="tim_on_off", input="onset_diff", fraction=1.0
        ):
            if len(seeds_of[key]) >= 1:
                gate.add(loss_label(key), *row_values(key))
    out["gate"] = gate
    checks = gate_checks(scores, params)
    if checks:
        out["checks"] = checks
        out["claims"] = claims_table(checks)

    table_a = Table(["model", "input", "loss", *columns], title="Table A: models × {ce, cb}")
    for model in MODELS_A:
        for loss in ("ce", "cb"):
            for key in find(model=model, imbalance=loss, fraction=1.0):
                p = params[key]
                if p["sampling"] in ("tim_on_off", "onset_apex_pair"):
                    table_a.add(model, p["input"], loss_label(key), *row_values(key))
    out["A"] = table_a
    table_b = Table(["imbalance", *columns], title="Table B: imbalance remedies (R3D-18-small, tim_on_off)")
    for method in IMBALANCE_B:
        for key in find(
            model="r3d_18", imbalance=method, sampling="tim_on_off", input="onset_diff", fraction=1.0
        ):
            table_b.add(loss_label(key), *row_values(key))
    out["B"] = table_b
    table_c = Table(["sampling", *columns], title="Table C: key-frame sampling (R3D-18-small, ce)")
    for strategy in SAMPLING_C:
        for key in find(model="r3d_18", imbalance="ce", sampling=strategy, input="onset_diff", fraction=1.0):
            table_c.add(strategy, *row_values(key))
    out["C"] = table_c
    table_d = Table(["training subjects", *columns], title="Table D: more is better (R3D-18-small, cb)")
    for fraction in FRACTIONS_D:
        for key in find(
            model="r3d_18", imbalance="cb", sampling="tim_on_off", input="onset_diff", fraction=fraction
        ):
            table_d.add(f"{fraction:.0%}", *row_values(key))
    out["D"] = table_d
    au_keys = [k for k, p in params.items() if p["task"] == "au"]
    if au_keys:
        s = scores[au_keys[0]]
        names = list(s["per_au_f1"])
        table_au = Table(["metric", "value"], title="AU table: R3D-18-small, multi-label head")
        table_au.add("macro-F1 (AUs with a positive)", _fmt(s["concatenated/macro_f1"]))
        table_au.add("micro-F1", _fmt(s["concatenated/micro_f1"]))
        table_au.add("macro-F1 (per-fold mean)", _fmt(s["per_fold/macro_f1"]))
        for name in names:
            table_au.add(f"F1 {name}", _fmt(s["per_au_f1"][name]))
        out["au"] = table_au
    gate_rows = [row[1:] for row in gate.rows]
    out = {
        k: v
        for k, v in out.items()
        if not isinstance(v, Table) or k in ("gate", "claims") or any(r[-6:] not in gate_rows for r in v.rows)
    }  # a table only when it adds a row the gate table does not already show
    return {k: v for k, v in out.items() if not isinstance(v, Table) or v.rows}


def gate_checks(scores: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The two gated claims (spec §6.11), evaluated when the gate configurations have ≥ 3 seeds.

    When a record holds ``cb`` with both batch reductions, the claim is checked on the default (``mean``)."""
    gate_keys = [
        k for k, p in params.items()
        if p["model"] == "r3d_18" and p["imbalance"] in ("ce", "cb") and p["sampling"] == "tim_on_off"
        and p["input"] == "onset_diff" and p["fraction"] == 1.0 and p["task"] == "emotion"
    ]  # fmt: skip
    gate_keys.sort(key=lambda k: params[k].get("weight_reduction") == "mean")  # the mean variant wins below
    keys = {params[k]["imbalance"]: k for k in gate_keys}
    if set(keys) != {"ce", "cb"}:
        return {}
    ce, cb = scores[keys["ce"]], scores[keys["cb"]]
    seeds = min(len(ce["seeds"]), len(cb["seeds"]))
    return {
        "seeds": seeds,
        "folds": ce["folds"],
        "uf1_threshold": UF1_THRESHOLD,
        "r3d_ce_uf1": ce["concatenated/uf1"][0],
        "r3d_cb_uf1": cb["concatenated/uf1"][0],
        "r3d_ce_uar": ce["concatenated/uar"][0],
        "r3d_cb_uar": cb["concatenated/uar"][0],
        "threshold_passed": bool(ce["concatenated/uf1"][0] >= UF1_THRESHOLD),
        "cb_beats_ce_uf1": bool(cb["concatenated/uf1"][0] > ce["concatenated/uf1"][0]),
        "cb_beats_ce_uar": bool(cb["concatenated/uar"][0] > ce["concatenated/uar"][0]),
        "gated": seeds >= 3,
        "cb_weight_reduction": params[keys["cb"]].get("weight_reduction", "weighted_mean"),
    }


def claims_table(checks: dict[str, Any]) -> Table:
    """The two gated claims as a table: measured value, target, verdict (``not gated`` below 3 seeds)."""
    table = Table(["claim", "measured", "target", "verdict"], formats={"measured": ".3f"},
                  title=f"Gated claims (spec §6.11): {checks['seeds']} seed(s), folds {checks['folds']}")  # fmt: skip

    def verdict(ok: bool) -> str:
        if checks["gated"]:
            return "pass" if ok else "MISS"
        return ("pass" if ok else "miss") + " (not gated, < 3 seeds)"

    table.add("R3D-18-small, ce: UF1", checks["r3d_ce_uf1"], f"≥ {checks['uf1_threshold']}",
              verdict(checks["threshold_passed"]))  # fmt: skip
    diff = checks["r3d_cb_uf1"] - checks["r3d_ce_uf1"]
    table.add("UF1(cb) − UF1(ce)", diff, "> 0", verdict(checks["cb_beats_ce_uf1"]))
    table.add("UAR(cb) − UAR(ce)", checks["r3d_cb_uar"] - checks["r3d_ce_uar"], "> 0 (reported)",
              "higher" if checks["cb_beats_ce_uar"] else "not higher")  # fmt: skip
    return table
