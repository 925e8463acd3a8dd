"""Per-class F1 of the gate's ``ce`` and ``cb`` cells, from a committed record (lab notebook §11).

Usage: ``uv run python packages/dfme/docs/scripts/gate_per_class.py packages/dfme/results/reproduce-gate-e15-lr1e-3.json``
Per seed, the test predictions are concatenated over the record's folds (as the gate's UF1 is); the table shows
the seed mean of each class's F1, its training share and the predicted share. A record holding ``cb`` with both
batch reductions (0.4.0: ``…-rmean.json``) compares ``ce`` with the mean-reduced ``cb`` (the gated one) and also
prints the Σw-normalised one. A record with more remedies (Table B) also gets one table of every remedy's
per-class F1 (lab notebook §20).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import numpy as np
from dfme.labels import EMOTIONS
from sklearn.metrics import f1_score


def main(path: str) -> None:
    record = json.loads(open(path, encoding="utf-8").read())
    runs: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in record["records"]:
        p = r["params"]
        legacy = p["imbalance"] == "cb" and p.get("weight_reduction", "weighted_mean") == "weighted_mean"
        runs[p["imbalance"] + (" (Σw)" if legacy else ""), p["seed"]].append(r["result"])
    k = len(EMOTIONS)
    f1: dict[str, list[np.ndarray]] = defaultdict(list)
    pred_share: dict[str, list[np.ndarray]] = defaultdict(list)
    true_share = None
    for (loss, _seed), results in sorted(runs.items()):
        y_true = np.concatenate([r["y_true"] for r in results])
        y_pred = np.concatenate([r["y_pred"] for r in results])
        f1[loss].append(f1_score(y_true, y_pred, labels=range(k), average=None, zero_division=0))
        pred_share[loss].append(np.bincount(y_pred, minlength=k) / len(y_pred))
        true_share = np.bincount(y_true, minlength=k) / len(y_true)
    cbs = ["cb", "cb (Σw)"] if "cb" in f1 and "cb (Σw)" in f1 else ["cb" if "cb" in f1 else "cb (Σw)"]
    for name in cbs:
        print(f"\n{name} vs ce")
        print("| class | test share | F1 ce | F1 cb | cb − ce | predicted share ce / cb |")
        print("|---|---|---|---|---|---|")
        for c in np.argsort(-true_share):
            ce, cb = np.mean(f1["ce"], axis=0)[c], np.mean(f1[name], axis=0)[c]
            pce, pcb = np.mean(pred_share["ce"], axis=0)[c], np.mean(pred_share[name], axis=0)[c]
            print(
                f"| {EMOTIONS[c]} | {true_share[c]:.3f} | {ce:.3f} | {cb:.3f} | {cb - ce:+.3f} | {pce:.3f} / {pcb:.3f} |"
            )
    if len(f1) > 2:
        names = list(f1)
        print("\nper-class F1, seed mean")
        print("| class | test share | " + " | ".join(names) + " |")
        print("|---|---|" + "---|" * len(names))
        for c in np.argsort(-true_share):
            cells = " | ".join(f"{np.mean(f1[n], axis=0)[c]:.3f}" for n in names)
            print(f"| {EMOTIONS[c]} | {true_share[c]:.3f} | {cells} |")


if __name__ == "__main__":
    main(sys.argv[1])
