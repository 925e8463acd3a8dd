"""Package verbs besides the Lightning ones: demos, delete, compare."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from paperlab_core.logging import log, make_run_dir, write_json_atomic
from paperlab_core.runtime import set_threads


def demos_main(argv: list[str]) -> int:
    """Generate expert demonstrations (optionally planted with flipped-label blocks) as a .npz file."""
    from r2rise.demos import make_demos, save_demos

    parser = argparse.ArgumentParser(prog="r2rise demos", description=demos_main.__doc__)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--demonstrator", help="'module:callable' expert (default: the hand-written one)")
    parser.add_argument("--num-demos", type=int, default=5)
    parser.add_argument("--length", type=int, default=200, help="frames per demonstration; 0 = full episodes")
    parser.add_argument("--exec-noise", type=float, default=0.1)
    parser.add_argument("--corrupt-frac", type=float, default=0.45)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="output .npz")
    args = parser.parse_args(argv)
    demos = make_demos(
        args.env,
        args.num_demos,
        args.length or None,
        args.exec_noise,
        args.corrupt_frac,
        args.block,
        args.seed,
        args.demonstrator,
    )
    path = save_demos(demos, args.out)
    corrupted = "" if demos.corrupted is None else f", {int(demos.corrupted.sum())} corrupted blocks"
    log(
        f"r2rise demos: {demos.num_demos} × {demos.length} frames of {demos.env_id} "
        f"(mean return {demos.returns.mean():.1f}{corrupted}) → {path}"
    )
    return 0


def _load_for_run(run: Path):
    import json

    from r2rise.demos import load_demos
    from r2rise.explain import ExplainConfig

    summary = json.loads((run / "summary.json").read_text())
    demos_file = run / "demos.npz"
    if not demos_file.is_file():
        raise FileNotFoundError(
            f"{run}: demos.npz is missing (run `r2rise explain` with --out on this folder)"
        )
    return load_demos(demos_file), ExplainConfig(**summary["config"])


def delete_main(argv: list[str]) -> int:
    """Q2 deletion curves for an explain run: remove top-k / random / bottom-k blocks and retrain."""
    from r2rise import plots
    from r2rise.explain import deletion_experiment, load_run, paper_percentile_experiment

    parser = argparse.ArgumentParser(prog="r2rise delete", description=delete_main.__doc__)
    parser.add_argument("--run", required=True, help="an `r2rise explain` output folder")
    parser.add_argument("--estimator", default="centred", choices=("raw", "rise", "centred", "linear"))
    parser.add_argument("--fractions", default="0.1,0.2,0.3,0.4,0.5")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument(
        "--paper-percentile",
        type=float,
        default=None,
        help="also run the official variant: keep frames ≤ this quantile of the frame map (0.6)",
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    run = Path(args.run)
    maps, _, _ = load_run(run)
    demos, cfg = _load_for_run(run)
    fractions = tuple(float(f) for f in args.fractions.split(","))
    table = deletion_experiment(demos, maps[f"{args.estimator}_block"], cfg, fractions, args.seeds)
    if args.paper_percentile is not None:
        table["paper_percentile"] = paper_percentile_experiment(
            demos, maps[f"{args.estimator}_frame"], cfg, args.paper_percentile, args.seeds
        )
        log(f"r2rise delete: official percentile variant {table['paper_percentile']}")
    write_json_atomic(run / "deletion.json", table)
    curves = {
        m: [(r["fraction"], r["mean"], r["std"]) for r in table[m]] for m in ("top", "random", "bottom")
    }
    plots.deletion_curves(curves, run / "deletion_curves.png", f"Q2 deletion ({args.estimator})")
    for m in ("top", "random", "bottom"):
        log(f"remove {m:6s}: " + ", ".join(f"{r['fraction']:.0%} → {r['mean']:.1f}" for r in table[m]))
    return 0


def compare_main(argv: list[str]) -> int:
    """Q3: rank agreement of the maps of two explain runs (same masks expected)."""
    from r2rise import plots
    from r2rise.estimators import minmax, rank_agreement
    from r2rise.explain import load_run

    parser = argparse.ArgumentParser(prog="r2rise compare", description=compare_main.__doc__)
    parser.add_argument("--run-a", required=True)
    parser.add_argument("--run-b", required=True)
    parser.add_argument("--estimator", default="centred", choices=("raw", "rise", "centred", "linear"))
    parser.add_argument("--out", help="output folder (default: a new run directory)")
    args = parser.parse_args(argv)
    maps_a, grids_a, _ = load_run(args.run_a)
    maps_b, grids_b, _ = load_run(args.run_b)
    same_masks = grids_a.shape == grids_b.shape and bool(np.array_equal(grids_a, grids_b))
    key = f"{args.estimator}_block"
    agreement = {**rank_agreement(maps_a[key], maps_b[key]), "same_masks": same_masks}
    out = Path(args.out) if args.out else make_run_dir("r2rise", "compare")
    write_json_atomic(out / "compare.json", agreement)
    plots.scatter(maps_a[key], maps_b[key], out / "q3_scatter.png", ("run A", "run B"), "Q3 block importance")
    diff = np.abs(minmax(maps_a[f"{args.estimator}_frame"]) - minmax(maps_b[f"{args.estimator}_frame"]))
    plots.heatmap(diff, out / "q3_abs_diff.png", "|norm(A) − norm(B)|")
    log(f"r2rise compare: {agreement} → {out}")
    return 0
