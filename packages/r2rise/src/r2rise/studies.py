"""The issue-#19 studies of ``r2rise reproduce --study protocols|families`` (planted CartPole, one cell per seed).

* ``protocols``: planted AUC and Q2 deletion for **every** estimator under both observation scalings
  (``env`` constants, ``demos`` mean/std) and both evaluation protocols (``package``: 4 greedy episodes;
  ``paper``: 20 episodes, ε = 0.1 as in the official code). ``raw`` and ``rise`` differ by the positive factor
  1/(N·p), so their rankings, deletion grids and retrained returns are identical: Q2 is run once for ``raw`` and
  reported for both.
* ``families``: Q3 across learner families on the same masks: ``bc_mlp`` and ``bc_linear`` (behaviour cloning,
  cross-entropy on the labels) and ``iq_mlp`` (offline inverse soft-Q imitation, IQ-Learn style: a Q-function
  fitted to the demonstrations' transitions (s, a, s'), no cross-entropy on the labels).

The tables are built from the records alone (``summarize_protocols``, ``summarize_families``).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.experiment import Cell
from paperlab_core.logging import write_json_atomic
from paperlab_core.results import Table
from r2rise.demos import make_demos
from r2rise.estimators import rank_agreement
from r2rise.explain import ESTIMATORS, ExplainConfig, deletion_experiment, run_r2rise, summary, usable_blocks

SCALINGS = ("env", "demos")
PROTOCOLS = {"package": (4, 0.0), "paper": (20, 0.1)}
"""Evaluation protocol → (episodes per model, ε of the ε-greedy evaluation)."""
PROTOCOL_LABELS = {"package": "4 greedy", "paper": "20, ε = 0.1"}
Q2_ESTIMATORS = ("raw", "centred", "linear")
"""Estimators retrained on in Q2 (``rise`` ranks exactly as ``raw``)."""
FAMILY_LEARNERS = ("bc_mlp", "bc_linear", "iq_mlp")
STUDY_FRACTIONS = (0.2, 0.4)
AUC_GATE = 0.75
"""Spec §6.9's planted-AUC threshold."""


def planted_demos(seed: int):
    """The planted configuration of spec §2.10 for one seed."""
    return make_demos("CartPole-v1", 5, 200, 0.1, 0.45, 10, seed)


def protocol_cells(seeds: list[int], n_masks: int, dtype: str) -> list[Cell]:
    common = {"study": "protocols", "n_masks": n_masks, "dtype": dtype, "fractions": list(STUDY_FRACTIONS)}
    return [
        Cell(
            f"protocols/N{n_masks}-{dtype}/{scaling}/{protocol}/seed{s}",
            {**common, "kind": "protocol", "scaling": scaling, "protocol": protocol, "seed": s},
        )
        for scaling, protocol, s in itertools.product(SCALINGS, PROTOCOLS, seeds)
    ]


def family_cells(seeds: list[int], n_masks: int, dtype: str) -> list[Cell]:
    common = {"study": "families", "n_masks": n_masks, "dtype": dtype}
    cells = [
        Cell(f"families/N{n_masks}-{dtype}/seed{s}", {**common, "kind": "family", "seed": s}) for s in seeds
    ]
    return cells + [
        Cell(f"families/N{n_masks}-{dtype}/bco/seed{s}", {**common, "kind": "family_bco", "seed": s})
        for s in seeds
    ]


def family_bco_cell(params: dict[str, Any], out: Path, device: str) -> dict[str, Any]:
    """``bco_mlp`` (imitation from observation: never reads the labels) against ``bc_mlp`` on the same masks."""
    seed = int(params["seed"])
    demos = planted_demos(seed)
    usable = usable_blocks(demos, 10)
    cfg = ExplainConfig(n_masks=params["n_masks"], dtype=params["dtype"], seed=seed, device=device)
    bc = run_r2rise(demos, cfg)
    bco = run_r2rise(demos, replace(cfg, learner="bco_mlp"), grids=bc.grids)
    agreement = rank_agreement(bc.maps["centred_block"][usable], bco.maps["centred_block"][usable])
    result = {
        "auc": summary(bco, demos, permutations=200)["planted_auc"]["centred"],
        "returns": {
            "mean": float(bco.returns.mean()),
            "min": float(bco.returns.min()),
            "max": float(bco.returns.max()),
        },
        "pair": agreement,
    }
    write_json_atomic(out / f"families-bco-seed{seed}" / "summary.json", result)
    return result


def protocol_cell(params: dict[str, Any], out: Path, device: str, retrain_seeds: int) -> dict[str, Any]:
    """Planted AUC of every estimator and Q2 deletion (top-k / random / bottom-k) by every estimator."""
    seed = int(params["seed"])
    episodes, epsilon = PROTOCOLS[params["protocol"]]
    cfg = ExplainConfig(
        n_masks=params["n_masks"],
        dtype=params["dtype"],
        seed=seed,
        device=device,
        obs_scaling=params["scaling"],
        episodes=episodes,
        epsilon=epsilon,
    )
    demos = planted_demos(seed)
    result = run_r2rise(demos, cfg)
    info = summary(result, demos)
    q2 = {}
    for name in Q2_ESTIMATORS:
        table = deletion_experiment(
            demos, result.maps[f"{name}_block"], cfg, params["fractions"], seeds=retrain_seeds
        )
        q2[name] = {m: [r["mean"] for r in table[m]] for m in ("top", "random", "bottom")}
    q2["rise"] = q2["raw"]
    folder = out / f"protocols-{params['scaling']}-{params['protocol']}-seed{seed}"
    write_json_atomic(folder / "summary.json", {**info, "q2": q2})
    return {
        "auc": info["planted_auc"],
        "corrupted_blocks": info["corrupted_blocks"],
        "return_mean": float(result.returns.mean()),
        "q2": q2,
    }


def family_cell(params: dict[str, Any], out: Path, device: str) -> dict[str, Any]:
    """Maps of the three learner families on the same masks: planted AUC and pairwise rank agreement."""
    seed = int(params["seed"])
    demos = planted_demos(seed)
    usable = usable_blocks(demos, 10)
    maps, aucs, returns, grids = {}, {}, {}, None
    for learner in FAMILY_LEARNERS:
        cfg = ExplainConfig(
            learner=learner, n_masks=params["n_masks"], dtype=params["dtype"], seed=seed, device=device
        )
        result = run_r2rise(demos, cfg, grids=grids)
        grids = result.grids
        info = summary(result, demos, permutations=200)
        maps[learner] = result.maps["centred_block"][usable]
        aucs[learner] = info["planted_auc"]["centred"]
        returns[learner] = {
            "mean": float(result.returns.mean()),
            "min": float(result.returns.min()),
            "max": float(result.returns.max()),
        }
    pairs = {
        f"{a} vs {b}": rank_agreement(maps[a], maps[b]) for a, b in itertools.combinations(FAMILY_LEARNERS, 2)
    }
    write_json_atomic(
        out / f"families-seed{seed}" / "summary.json", {"auc": aucs, "returns": returns, "pairs": pairs}
    )
    return {"auc": aucs, "returns": returns, "pairs": pairs}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _number(value: Any) -> float:
    """A record's number; NaN is stored as the string ``"nan"`` (JSON has no NaN)."""
    return float(value)


def _finite_mean(values: list[Any]) -> float:
    """Mean of the finite values (an undefined ρ — a flat map — is left out of the mean)."""
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return _mean(finite)


def summarize_protocols(records: list[dict[str, Any]]) -> dict[str, Any]:
    """AUC table (estimator × scaling × protocol, per seed + mean + gate) and Q2 table (mean over seeds)."""
    seeds = sorted({r["params"]["seed"] for r in records})
    fractions = records[0]["params"]["fractions"]
    seed_columns = [f"seed {s}" for s in seeds]
    auc = Table(
        ["scaling", "evaluation", "estimator", *seed_columns, "mean", f"≥ {AUC_GATE}"],
        formats={**{c: ".3f" for c in seed_columns}, "mean": ".3f"},
        title="Planted AUC (clean block ranked above corrupted block) by estimator, observation scaling and "
        "evaluation protocol",
    )
    q2_columns = [f"{mode} {f:.0%}" for f in fractions for mode in ("top", "random", "bottom")]
    q2 = Table(
        ["scaling", "evaluation", "estimator", *q2_columns, "top ÷ random 20 %"],
        formats={**{c: ".1f" for c in q2_columns}, "top ÷ random 20 %": ".3f"},
        title="Q2: mean return after deleting blocks ranked by each estimator (mean over seeds × retrainings; "
        "rise = raw)",
    )
    for scaling, protocol in itertools.product(SCALINGS, PROTOCOLS):
        group = {
            r["params"]["seed"]: r["result"]
            for r in records
            if r["params"]["scaling"] == scaling and r["params"]["protocol"] == protocol
        }
        if not group:
            continue
        for name in ESTIMATORS:
            values = [group[s]["auc"][name] if s in group else None for s in seeds]
            mean = _mean([v for v in values if v is not None])
            auc.add(scaling, PROTOCOL_LABELS[protocol], name, *values, mean, bool(mean >= AUC_GATE))
            if name not in Q2_ESTIMATORS:
                continue  # rise: the same ranking, deletions and returns as raw
            cells = []
            for i in range(len(fractions)):
                for mode in ("top", "random", "bottom"):
                    cells.append(_mean([res["q2"][name][mode][i] for res in group.values()]))
            ratio = cells[0] / cells[1] if 0.2 in fractions and cells[1] else None
            q2.add(scaling, PROTOCOL_LABELS[protocol], name, *cells, ratio)
    params = records[0]["params"]
    text = (
        f"CartPole-v1 planted (5 × 200 frames, 45 % of blocks label-flipped), N = {params['n_masks']} masks, "
        f"keep p = 0.5, bc_mlp ({params['dtype']}); evaluation `package` = 4 greedy episodes, `paper` = 20 "
        "episodes with ε = 0.1 (official code). Q2 for `rise` equals `raw` (same ranking)."
    )
    return {"auc": auc, "q2": q2, "text": text}


def summarize_families(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Q3 across learner families: per-seed AUC/returns and pairwise Spearman (``bco_mlp`` against ``bc_mlp``
    from its own records), plus means."""
    bco = {r["params"]["seed"]: r["result"] for r in records if r["params"]["kind"] == "family_bco"}
    records = sorted(
        (r for r in records if r["params"]["kind"] == "family"), key=lambda r: r["params"]["seed"]
    )
    pair_names = [f"{a} vs {b}" for a, b in itertools.combinations(FAMILY_LEARNERS, 2)]
    columns = [
        *(f"AUC {n}" for n in (*FAMILY_LEARNERS, "bco_mlp")),
        *(f"return {n}" for n in (*FAMILY_LEARNERS, "bco_mlp")),
        *(f"ρ {p}" for p in (*pair_names, "bc_mlp vs bco_mlp")),
    ]
    table = Table(
        ["seed", *columns],
        formats={c: (".1f" if c.startswith("return") else ".3f") for c in columns},
        title="Q3 across learner families on the same masks (centred block maps): planted AUC, mean return "
        "over the masks, Spearman ρ between maps (bco_mlp: imitation from observation, never reads the labels; ρ is "
        "nan where its map is flat, and the mean leaves it out)",
    )
    rows = []
    for r in records:
        res = r["result"]
        extra = bco.get(r["params"]["seed"])
        row = [
            *(res["auc"][n] for n in FAMILY_LEARNERS),
            extra["auc"] if extra else None,
            *(res["returns"][n]["mean"] for n in FAMILY_LEARNERS),
            extra["returns"]["mean"] if extra else None,
            *(res["pairs"][p]["spearman"] for p in pair_names),
            _number(extra["pair"]["spearman"]) if extra else None,
        ]
        rows.append(row)
        table.add(r["params"]["seed"], *row)
    table.add("mean", *(_finite_mean(list(col)) for col in zip(*rows, strict=True)))
    return {"families": table}
