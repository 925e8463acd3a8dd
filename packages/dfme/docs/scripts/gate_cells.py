"""Per fold-seed UF1 of the gate's ``ce`` and ``cb`` cells, from a committed record (lab notebook §11–12).

Usage: ``uv run python packages/dfme/docs/scripts/gate_cells.py packages/dfme/results/reproduce-gate-e15-lr1e-3.json``
Prints a Markdown table: one row per fold, ``ce`` / ``cb`` UF1 per seed and the fold's own ``cb`` − ``ce`` (seed
mean), then the count of fold-seed pairs where ``ce`` is ahead. The gate itself (UF1 of the predictions
concatenated over folds) is the record's ``claims`` table, not this one.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    record = json.loads(open(path, encoding="utf-8").read())
    uf1: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for r in record["records"]:
        p = r["params"]
        uf1[p["fold"], p["seed"]][p["imbalance"]] = float(r["result"]["uf1"])
    folds = sorted({f for f, _ in uf1})
    seeds = sorted({s for _, s in uf1})
    print(
        "| fold | "
        + " | ".join(f"seed {s} `ce` / `cb`" for s in seeds)
        + " | `cb` − `ce`, fold alone (seed mean) |"
    )
    print("|---" * (len(seeds) + 2) + "|")
    ahead = pairs = 0
    for f in folds:
        cells = [uf1[f, s] for s in seeds]
        diff = sum(c["cb"] - c["ce"] for c in cells) / len(cells)
        ahead += sum(c["ce"] > c["cb"] for c in cells)
        pairs += len(cells)
        row = " | ".join(f"{c['ce']:.3f} / {c['cb']:.3f}" for c in cells)
        print(f"| {f} | {row} | {diff:+.3f} |")
    print(f"\n`ce` ahead in {ahead} of {pairs} fold-seed pairs.")


if __name__ == "__main__":
    main(sys.argv[1])
