"""Package verbs without a module of their own: ``demos`` and ``compare`` (numpy only, no torch)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from paperlab_core.errors import ConfigError
from paperlab_core.logging import log
from paperlab_core.verbs import Run


def demos(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``r2rise demos``: expert demonstrations (optionally planted with flipped-label blocks) → ``demos.npz``."""
    from r2rise.demos import make_demos, save_demos

    made = make_demos(
        args.env,
        args.num_demos,
        args.length or None,
        args.exec_noise,
        args.corrupt_frac,
        args.block,
        args.seed,
        args.demonstrator,
    )
    path = save_demos(made, run.path("demos.npz"))
    corrupted = None if made.corrupted is None else int(made.corrupted.sum())
    planted = "" if corrupted is None else f", {corrupted} corrupted blocks"
    log(
        f"r2rise demos: {made.num_demos} × {made.length} frames of {made.env_id} "
        f"(mean return {made.returns.mean():.1f}{planted}) → {path}"
    )
    return {
        "demos": str(path),
        "env_id": made.env_id,
        "num_demos": made.num_demos,
        "length": made.length,
        "mean_return": float(made.returns.mean()),
        "corrupted_blocks": corrupted,
    }


def compare(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``r2rise compare``: Q3 rank agreement of the maps of two explain runs (same masks expected)."""
    from r2rise import plots
    from r2rise.estimators import minmax, rank_agreement
    from r2rise.runfiles import load_run

    maps_a, grids_a, _ = load_run(args.run_a)
    maps_b, grids_b, _ = load_run(args.run_b)
    same_masks = grids_a.shape == grids_b.shape and bool(np.array_equal(grids_a, grids_b))
    if not same_masks:
        log(
            "r2rise compare: warning: the two runs used different masks; their maps are compared all the same"
        )
    key = f"{args.estimator}_block"
    if maps_a[key].shape != maps_b[key].shape:
        raise ConfigError(
            f"the runs' block maps differ in shape ({maps_a[key].shape} vs {maps_b[key].shape}): "
            "compare runs on the same demonstrations"
        )
    agreement = {**rank_agreement(maps_a[key], maps_b[key]), "same_masks": same_masks}
    run.write_json("compare.json", agreement)
    plots.scatter(
        maps_a[key], maps_b[key], run.path("q3_scatter.png"), ("run A", "run B"), "Q3 block importance"
    )
    diff = np.abs(minmax(maps_a[f"{args.estimator}_frame"]) - minmax(maps_b[f"{args.estimator}_frame"]))
    plots.heatmap(diff, run.path("q3_abs_diff.png"), "|norm(A) − norm(B)|")
    log(f"r2rise compare: {agreement}")
    return {"compare": agreement, "estimator": args.estimator}
