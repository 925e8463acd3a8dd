"""Diagnosis of the temporal detector (lab notebook, 2026-12-06 night; not shipped, not in results/).

Usage: ``python docs/temporal_diag.py [--ckpt default|PATH] [--train-per-class 48] [--test-per-class 24]``.
Prints, for training cubes (train stills, seed 0) and held-out cubes (held-out stills, seed 2, as ``evaluate``):
per-kind mean floating/flicker probabilities, the head AUCs, and the AUC of hand-made visibility statistics
(mean motion-compensated residual cue; mean |positive − consistent twin| inside the window).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sstam.bundle import load_model
from sstam.datasets import build_cube_set
from sstam.metrics import roc_auc
from sstam.models.cues import temporal_cues
from sstam.models.temporal import TemporalDetector
from sstam.stills import HELDOUT_STILLS, TRAIN_STILLS


def report(name: str, cubes, model) -> None:
    t0 = time.perf_counter()
    probs = model.engine.temporal_probs(cubes.cubes, cubes.has_prev)
    x = TemporalDetector.prepare(torch.from_numpy(cubes.cubes))
    with torch.inference_mode():
        cues = temporal_cues(x, torch.from_numpy(cubes.has_prev))
    residual = cues[:, :, 3].mean(dim=(1, 2, 3)).numpy()
    residual_max = cues[:, :, 3].amax(dim=(2, 3)).mean(dim=1).numpy()
    kinds = np.asarray(cubes.kind)
    print(f"== {name}: {len(kinds)} cubes, {time.perf_counter() - t0:.1f}s")
    for kind in sorted(set(kinds)):
        m = kinds == kind
        print(
            f"  {kind:20s} n={m.sum():3d} p_flick={probs[m, 0].mean():.3f} p_float={probs[m, 1].mean():.3f}"
            f" resid={residual[m].mean():.4f} resid_max={residual_max[m].mean():.3f}"
        )
    for k, head in enumerate(("flickering", "floating")):
        keep = cubes.labels[:, k] >= 0
        print(f"  AUC {head}: {roc_auc(cubes.labels[keep, k], probs[keep, k]):.3f}")
    floating = cubes.labels[:, 1]
    known = floating >= 0
    print(f"  ignored (invisible) floating positives: {(~known).sum()}")
    print(f"  AUC floating by mean residual cue: {roc_auc(floating[known], residual[known]):.3f}")
    pair = known & np.isin(kinds, ["floating_drift", "floating_frozen", "floating_consistent"])
    print(f"  AUC floating vs consistent twin (head): {roc_auc(floating[pair], probs[pair, 1]):.3f}")
    print(f"  AUC floating vs consistent twin (resid): {roc_auc(floating[pair], residual[pair]):.3f}")
    # visibility of the drift: the positive and its consistent twin are consecutive cubes
    pos = np.flatnonzero(np.isin(kinds, ["floating_drift", "floating_frozen"]))
    diff = np.abs(cubes.cubes[pos].astype(np.float32) - cubes.cubes[pos + 1].astype(np.float32))
    vis = diff.mean(axis=(1, 2, 3, 4))
    print(
        "  |positive - twin| grey levels: "
        + " ".join(f"q{q}={np.quantile(vis, q / 100):.2f}" for q in (10, 25, 50, 75, 90))
    )
    low = vis < 2.0  # whole-cube mean (the region is 24-48 px of 64)
    print(
        f"  positives with |Δ| < 2: {low.sum()} of {len(vis)}; their mean p_float {probs[pos[low], 1].mean():.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ckpt", default="default")
    parser.add_argument("--train-per-class", type=int, default=48)
    parser.add_argument("--test-per-class", type=int, default=24)
    parser.add_argument("--train-seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.ckpt)
    model.engine.temporal.eval()
    train = build_cube_set(TRAIN_STILLS, args.train_per_class, 8, 64, args.train_seed)
    report(f"train stills (seed {args.train_seed})", train, model)
    report("held-out stills (seed 2)", build_cube_set(HELDOUT_STILLS, args.test_per_class, 8, 64, 2), model)


if __name__ == "__main__":
    main()
