"""The R2RISE loop (spec §2.1): masks → batched retraining → vectorised evaluation → importance maps.

masks ← generate_masks(N, (D, T), p, block, seed)
for each chunk of masks:
    weights ← masks[chunk] on the valid frames
    policies ← learner.fit(frames, actions, weights, init seeds)
    R[chunk] ← evaluator(policies)
maps ← estimators(masks, R)
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlab_core.logging import atomic_open, log, write_json_atomic, write_text_atomic
from r2rise import plots
from r2rise.demos import Demonstrations
from r2rise.envs import env_spaces
from r2rise.estimators import all_maps, compressed_map, permutation_test, returns_summary, roc_auc
from r2rise.evaluate import Evaluator
from r2rise.learners import LEARNERS, Normaliser, fit_ensemble
from r2rise.masks import (
    deletion_grid,
    frame_weights,
    generate_grids,
    grids_to_masks,
    num_blocks,
    percentile_keep_mask,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
EXPLAIN_LEARNERS = (*LEARNERS, "bc_cnn")
"""``bc_cnn``: Nature-DQN CNNs on Atari stacks with the paper-code regime (``atari.fit_cnn_ensemble``; ``steps`` is
the update cap, ``lr`` the Adam rate — the paper uses 15,000 and 1e-3)."""
ESTIMATORS = ("raw", "rise", "centred", "linear")


@dataclass
class ExplainConfig:
    """Settings of one R2RISE run (every field is a CLI option of ``r2rise explain``)."""

    learner: str = "bc_mlp"
    n_masks: int = 200
    keep_p: float = 0.5
    block: int = 10
    chunk: int = 200
    seed: int = 0
    hidden: int = 32
    lr: float = 1e-2
    steps: int = 200
    episodes: int = 4
    epsilon: float = 0.0
    ridge: float = 1.0
    dtype: str = "float64"
    obs_scaling: str = "env"
    cnn_batch: int = 32
    cnn_val_every: int = 500
    cnn_patience: int = 5
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.learner not in EXPLAIN_LEARNERS:
            raise ValueError(f"unknown learner {self.learner!r} (choose from {', '.join(EXPLAIN_LEARNERS)})")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.obs_scaling not in ("env", "demos"):
            raise ValueError(f"obs_scaling must be 'env' or 'demos', got {self.obs_scaling!r}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be ≥ 1, got {self.chunk}")


@dataclass
class ExplainResult:
    config: ExplainConfig
    grids: np.ndarray  # (N, D, B) uint8
    episode_returns: np.ndarray  # (N, R)
    maps: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def returns(self) -> np.ndarray:
        return self.episode_returns.mean(axis=1)


def make_normaliser(demos: Demonstrations, mode: str) -> Normaliser:
    obs, _, _ = demos.frames()
    flat = obs.reshape(obs.shape[0], -1)
    return Normaliser.for_env(demos.env_id, flat) if mode == "env" else Normaliser.fit(flat)


def retrain_and_evaluate(
    demos: Demonstrations,
    grids: np.ndarray,
    cfg: ExplainConfig,
    members: np.ndarray | None = None,
    learner: str | None = None,
) -> np.ndarray:
    """Retrain one model per keep-grid (N, D, B) on its kept frames and return per-episode returns (N, R)."""
    return retrain_on_masks(demos, grids_to_masks(grids, demos.length, cfg.block), cfg, members, learner)


def retrain_on_masks(
    demos: Demonstrations,
    masks: np.ndarray,
    cfg: ExplainConfig,
    members: np.ndarray | None = None,
    learner: str | None = None,
) -> np.ndarray:
    """Retrain one model per frame mask (N, D, T) and return per-episode returns (N, R), in chunks."""
    learner = learner or cfg.learner
    obs, actions, _ = demos.frames()
    _, num_actions = env_spaces(demos.env_id)
    evaluator = Evaluator(demos.env_id, cfg.episodes, cfg.epsilon, cfg.seed, cfg.max_steps)
    members = np.arange(len(masks)) if members is None else np.asarray(members)
    normaliser = None if learner == "bc_cnn" else make_normaliser(demos, cfg.obs_scaling)
    out = np.zeros((len(masks), cfg.episodes))
    for start in range(0, len(masks), cfg.chunk):
        stop = min(start + cfg.chunk, len(masks))
        weights = frame_weights(masks[start:stop], demos.valid)
        if learner == "bc_cnn":
            from r2rise.atari import fit_cnn_ensemble

            policies = fit_cnn_ensemble(
                obs,
                actions,
                weights,
                num_actions,
                cfg.lr,
                cfg.steps,
                cfg.cnn_batch,
                cfg.seed,
                list(members[start:stop]),
                val_every=cfg.cnn_val_every,
                patience=cfg.cnn_patience,
            )
        else:
            policies = fit_ensemble(
                obs.reshape(obs.shape[0], -1),
                actions,
                weights,
                num_actions,
                learner,
                cfg.hidden,
                cfg.lr,
                cfg.steps,
                cfg.seed,
                members[start:stop],
                normaliser,
                DTYPES[cfg.dtype],
            )
        out[start:stop] = evaluator.evaluate(policies.act, stop - start)
    return out


def run_r2rise(demos: Demonstrations, cfg: ExplainConfig, grids: np.ndarray | None = None) -> ExplainResult:
    """Masks (or the given ``grids``, e.g. shared by two learners) → retrain → evaluate → all estimators."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    if grids is None:
        grids = generate_grids(
            cfg.n_masks, demos.num_demos, num_blocks(demos.length, cfg.block), cfg.keep_p, cfg.seed
        )
    timings["masks_s"] = time.perf_counter() - start
    start = time.perf_counter()
    episode_returns = retrain_and_evaluate(demos, grids, cfg)
    timings["retrain_evaluate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    maps = compute_maps(grids, episode_returns.mean(axis=1), demos, cfg)
    timings["estimators_s"] = time.perf_counter() - start
    return ExplainResult(cfg, grids, episode_returns, maps, timings)


def compute_maps(grids: np.ndarray, returns: np.ndarray, demos: Demonstrations, cfg: ExplainConfig) -> dict:
    masks = grids_to_masks(grids, demos.length, cfg.block)
    maps = all_maps(grids, masks, returns, cfg.keep_p, cfg.ridge, cfg.block)
    for name in ESTIMATORS:
        maps[f"{name}_compressed"] = compressed_map(
            np.where(demos.valid, maps[f"{name}_frame"], 0.0), cfg.block
        )
    return maps


def usable_blocks(demos: Demonstrations, block: int) -> np.ndarray:
    """(D, B) True where a block contains at least one valid frame."""
    pad = (-demos.length) % block
    valid = np.pad(demos.valid, ((0, 0), (0, pad)))
    return valid.reshape(demos.num_demos, -1, block).any(axis=2)


def summary(result: ExplainResult, demos: Demonstrations, permutations: int = 1000) -> dict[str, Any]:
    """Q1 summary (spread of returns + permutation test) and, for planted demos, AUC of every estimator."""
    out: dict[str, Any] = {
        "q1_returns": returns_summary(result.returns),
        "q1_permutation": permutation_test(result.grids, result.returns, permutations, result.config.seed),
        "config": asdict(result.config),
        "timings": result.timings,
    }
    if demos.corrupted is not None:
        usable = usable_blocks(demos, result.config.block)
        out["planted_auc"] = {
            name: roc_auc(result.maps[f"{name}_block"][usable], ~demos.corrupted[usable])
            for name in ESTIMATORS
        }
        out["corrupted_blocks"] = int(demos.corrupted[usable].sum())
    return out


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())


def save_run(
    result: ExplainResult, demos: Demonstrations, out_dir: str | os.PathLike[str], prefix: str = ""
) -> dict[str, Any]:
    """Write masks.npz (+ seed), returns.npy, maps.npz, compressed maps (CSV), heatmaps and summary.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = result.config
    _write_npz(
        out / f"{prefix}masks.npz",
        {
            "grids": result.grids,
            "seed": np.asarray(cfg.seed),
            "keep_p": np.asarray(cfg.keep_p),
            "block": np.asarray(cfg.block),
        },
    )
    buffer = io.BytesIO()
    np.save(buffer, result.episode_returns)
    with atomic_open(out / f"{prefix}returns.npy", "wb") as handle:
        handle.write(buffer.getvalue())
    _write_npz(out / f"{prefix}maps.npz", result.maps)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["block_start_frame", *ESTIMATORS])
    for b in range(result.maps["raw_compressed"].size):
        writer.writerow([b * cfg.block, *(f"{result.maps[f'{n}_compressed'][b]:.6g}" for n in ESTIMATORS)])
    write_text_atomic(out / f"{prefix}compressed_maps.csv", rows.getvalue())
    for name in ESTIMATORS:
        plots.heatmap(
            result.maps[f"{name}_frame"],
            out / f"{prefix}heatmap_{name}.png",
            f"R2RISE {name} map ({cfg.learner}, N={len(result.grids)})",
            demos.valid,
            demos.corrupted,
            cfg.block,
        )
    plots.compressed_bar(
        result.maps["centred_compressed"],
        out / f"{prefix}compressed_centred.png",
        "compressed centred map",
        cfg.block,
    )
    plots.returns_histogram(
        result.returns, out / f"{prefix}q1_returns_hist.png", f"Q1: returns across {len(result.grids)} masks"
    )
    info = summary(result, demos)
    write_json_atomic(out / f"{prefix}summary.json", info)
    return info


def load_run(
    run_dir: str | os.PathLike[str], prefix: str = ""
) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Maps, grids and summary of a saved run."""
    run = Path(run_dir)
    for name in ("maps.npz", "masks.npz", "summary.json"):
        if not (run / f"{prefix}{name}").is_file():
            raise FileNotFoundError(
                f"{run}: {prefix}{name} is missing (is this an `r2rise explain` run directory?)"
            )
    with np.load(run / f"{prefix}maps.npz") as data:
        maps = {k: data[k] for k in data.files}
    with np.load(run / f"{prefix}masks.npz") as data:
        grids = data["grids"]
    return maps, grids, json.loads((run / f"{prefix}summary.json").read_text())


def deletion_experiment(
    demos: Demonstrations,
    block_scores: np.ndarray,
    cfg: ExplainConfig,
    fractions: tuple[float, ...] = (0.2, 0.4),
    seeds: int = 8,
    learner: str | None = None,
) -> dict[str, Any]:
    """Q2: retrain after removing the top-k, a random k, or the bottom-k blocks by ``block_scores``.

    Each (mode, fraction) is retrained with ``seeds`` initialisations (shared across modes: paired design); the
    random deletion draws a new block set per seed. All retrainings run as one batched ensemble.
    """
    usable = usable_blocks(demos, cfg.block)
    grids, labels, members = [], [], []
    for fraction in fractions:
        for mode in ("top", "random", "bottom"):
            for s in range(seeds):
                grids.append(deletion_grid(block_scores, usable, fraction, mode, seed=cfg.seed * 1000 + s))
                labels.append((mode, fraction))
                members.append(100_000 + s)
    returns = retrain_and_evaluate(demos, np.stack(grids), cfg, np.asarray(members), learner).mean(axis=1)
    table: dict[str, Any] = {"fractions": list(fractions), "seeds": seeds}
    for mode in ("top", "random", "bottom"):
        table[mode] = []
        for fraction in fractions:
            values = returns[[i for i, lab in enumerate(labels) if lab == (mode, fraction)]]
            table[mode].append(
                {
                    "fraction": fraction,
                    "mean": float(values.mean()),
                    "std": float(values.std()),
                    "returns": values.tolist(),
                }
            )
    return table


def paper_percentile_experiment(
    demos: Demonstrations, frame_map: np.ndarray, cfg: ExplainConfig, percentile: float = 0.6, seeds: int = 10
) -> dict[str, Any]:
    """Official Q2 variant (``BC.py --eval``): keep frames with importance ≤ the ``percentile`` quantile of the whole
    (D, T) map (0.6 removes the top 40 %), retrain ``seeds`` times; compare with random block masks that keep the
    same fraction (KEEP probability = ``percentile``)."""
    keep = percentile_keep_mask(frame_map, demos.valid, percentile)
    members = 300_000 + np.arange(seeds)
    top_removed = retrain_on_masks(demos, np.repeat(keep[None], seeds, axis=0), cfg, members).mean(axis=1)
    grids = generate_grids(
        seeds, demos.num_demos, num_blocks(demos.length, cfg.block), percentile, cfg.seed + 1
    )
    random_removed = retrain_and_evaluate(demos, grids, cfg, members).mean(axis=1)
    return {
        "percentile": percentile,
        "seeds": seeds,
        "top_removed": {"mean": float(top_removed.mean()), "std": float(top_removed.std())},
        "random_removed": {"mean": float(random_removed.mean()), "std": float(random_removed.std())},
    }


def explain_main(argv: list[str]) -> int:
    """The R2RISE loop on a demonstrations file: masks, returns, maps (raw/rise/centred/linear), heatmaps."""
    import argparse

    from paperlab_core.logging import make_run_dir
    from r2rise.demos import load_demos, save_demos

    defaults = ExplainConfig()
    parser = argparse.ArgumentParser(prog="r2rise explain", description=explain_main.__doc__)
    parser.add_argument(
        "--demos", help="demonstrations .npz (default: generate the embedded planted CartPole set)"
    )
    parser.add_argument("--learner", default=defaults.learner, choices=EXPLAIN_LEARNERS)
    parser.add_argument("--n-masks", type=int, default=defaults.n_masks)
    parser.add_argument(
        "--keep-p", type=float, default=defaults.keep_p, help="probability of KEEPING a block"
    )
    parser.add_argument("--block", type=int, default=defaults.block)
    parser.add_argument("--chunk", type=int, default=defaults.chunk, help="models trained at once")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--episodes", type=int, default=defaults.episodes)
    parser.add_argument("--epsilon", type=float, default=defaults.epsilon)
    parser.add_argument("--ridge", type=float, default=defaults.ridge)
    parser.add_argument("--dtype", default=defaults.dtype, choices=sorted(DTYPES))
    parser.add_argument("--obs-scaling", default=defaults.obs_scaling, choices=("env", "demos"))
    parser.add_argument("--cnn-batch", type=int, default=defaults.cnn_batch, help="bc_cnn minibatch")
    parser.add_argument(
        "--cnn-val-every", type=int, default=defaults.cnn_val_every, help="bc_cnn validation period"
    )
    parser.add_argument(
        "--cnn-patience", type=int, default=defaults.cnn_patience, help="bc_cnn early stopping"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="evaluation episode cap (agent steps)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", help="output folder (default: runs/r2rise/<timestamp>-explain)")
    args = parser.parse_args(argv)
    from paperlab_core.runtime import set_threads

    set_threads(args.threads)
    cfg = ExplainConfig(
        args.learner,
        args.n_masks,
        args.keep_p,
        args.block,
        args.chunk,
        args.seed,
        args.hidden,
        args.lr,
        args.steps,
        args.episodes,
        args.epsilon,
        args.ridge,
        args.dtype,
        args.obs_scaling,
        args.cnn_batch,
        args.cnn_val_every,
        args.cnn_patience,
        args.max_steps,
    )
    if args.demos:
        demos = load_demos(args.demos)
    else:
        from r2rise.demos import make_demos

        demos = make_demos("CartPole-v1", 5, 200, 0.1, 0.45, cfg.block, cfg.seed)
    out = Path(args.out) if args.out else make_run_dir("r2rise", "explain")
    save_demos(demos, out / "demos.npz")
    result = run_r2rise(demos, cfg)
    info = save_run(result, demos, out)
    log(
        f"r2rise explain: Q1 returns {info['q1_returns']}, permutation p = {info['q1_permutation']['p_value']:.4f}"
    )
    if "planted_auc" in info:
        log(f"r2rise explain: planted AUC {info['planted_auc']}")
    log(f"r2rise explain: wrote {out}")
    print(out)
    return 0
