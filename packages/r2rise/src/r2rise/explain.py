"""The R2RISE loop (spec §2.1): masks → batched retraining → vectorised evaluation → importance maps.

masks ← generate_masks(N, (D, T), p, block, seed)
for each chunk of masks:
    weights ← masks[chunk] on the valid frames
    policies ← learner.fit(frames, actions, weights, init seeds)
    R[chunk] ← evaluator(policies)
maps ← estimators(masks, R)
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlab_core.errors import ConfigError
from paperlab_core.logging import atomic_open, log, write_json_atomic, write_text_atomic
from paperlab_core.verbs import Run
from r2rise import plots
from r2rise.demos import Demonstrations, load_demos, make_demos, save_demos
from r2rise.envs import env_spaces
from r2rise.estimators import all_maps, compressed_map, permutation_test, returns_summary, roc_auc
from r2rise.evaluate import Evaluator
from r2rise.learners import LEARNERS, OBS_SCALINGS, Normaliser, fit_ensemble
from r2rise.masks import (
    deletion_grid,
    frame_weights,
    generate_grids,
    grids_to_masks,
    num_blocks,
    percentile_keep_mask,
)
from r2rise.runfiles import load_run

__all__ = ["load_run"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
EXPLAIN_LEARNERS = (*LEARNERS, "bc_cnn", "iq_mlp", "bco_mlp")
"""``bc_cnn``: Nature-DQN CNNs on Atari stacks with the paper-code regime (``atari.fit_cnn_ensemble``; ``steps`` is
the update cap, ``lr`` the Adam rate — the paper uses 15,000 and 1e-3). ``iq_mlp``: offline inverse soft-Q
imitation (``iq.fit_iq_ensemble``) and ``bco_mlp``: behavioural cloning from observation (``bco``), learners of
other families for Q3."""
ESTIMATORS = ("raw", "rise", "centred", "linear")


@dataclass
class ExplainConfig:
    """Settings of one R2RISE run (every field is a CLI option of ``r2rise explain``; ``device`` is where the
    ensembles train: ``--device``)."""

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
    eval_envs: int | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.learner not in EXPLAIN_LEARNERS:
            raise ConfigError(f"unknown learner {self.learner!r} (choose from {', '.join(EXPLAIN_LEARNERS)})")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.obs_scaling not in OBS_SCALINGS:
            raise ConfigError(f"obs_scaling must be 'env' or 'demos', got {self.obs_scaling!r}")
        if self.chunk < 1:
            raise ConfigError(f"chunk must be ≥ 1, got {self.chunk}")
        if not 0.0 < self.keep_p < 1.0:
            raise ConfigError(f"keep_p (probability of keeping a block) must be in (0, 1), got {self.keep_p}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {self.epsilon}")


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
    evaluator = Evaluator(demos.env_id, cfg.episodes, cfg.epsilon, cfg.seed, cfg.max_steps, cfg.eval_envs)
    members = np.arange(len(masks)) if members is None else np.asarray(members)
    normaliser = None if learner == "bc_cnn" else make_normaliser(demos, cfg.obs_scaling)
    out = np.zeros((len(masks), cfg.episodes))
    flat = obs.reshape(obs.shape[0], -1)
    if learner in ("iq_mlp", "bco_mlp"):  # the successor of every frame, once (the masks only reweight)
        from r2rise.iq import transitions

        successor, has_next = transitions(demos.valid)
        next_obs = demos.obs.reshape(-1, *demos.obs_shape)[successor].reshape(obs.shape[0], -1)
    for start in range(0, len(masks), cfg.chunk):
        stop = min(start + cfg.chunk, len(masks))
        weights = frame_weights(masks[start:stop], demos.valid)
        mlp = {  # what the three MLP learners share
            "hidden": cfg.hidden,
            "lr": cfg.lr,
            "steps": cfg.steps,
            "seed": cfg.seed,
            "members": members[start:stop],
            "normaliser": normaliser,
            "dtype": DTYPES[cfg.dtype],
            "device": cfg.device,
        }
        if learner == "bco_mlp":
            from r2rise.bco import fit_bco_ensemble

            idm = cached_idm(demos.env_id, num_actions, cfg.seed, cfg.dtype)
            policies = fit_bco_ensemble(flat, next_obs, has_next, weights, idm, num_actions, **mlp)
        elif learner == "iq_mlp":
            from r2rise.iq import fit_iq_ensemble

            policies = fit_iq_ensemble(flat, next_obs, has_next, actions, weights, num_actions, **mlp)
        elif learner == "bc_cnn":
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
                device=cfg.device,
            )
        else:
            policies = fit_ensemble(flat, actions, weights, num_actions, learner, **mlp)
        out[start:stop] = evaluator.evaluate(policies, stop - start)
    return out


@functools.lru_cache(maxsize=8)
def cached_idm(env_id: str, num_actions: int, seed: int, dtype: str):
    """``bco_mlp``'s inverse dynamics model, fitted once per (env, seed, dtype): it depends on neither the
    demonstrations nor the masks."""
    from r2rise.bco import fit_idm

    return fit_idm(env_id, num_actions, seed, DTYPES[dtype])


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


def deletion_experiment(
    demos: Demonstrations,
    block_scores: np.ndarray,
    cfg: ExplainConfig,
    fractions: Sequence[float] = (0.2, 0.4),
    seeds: int | Sequence[int] = 8,
    learner: str | None = None,
) -> dict[str, Any]:
    """Q2: retrain after removing the top-k, a random k, or the bottom-k blocks by ``block_scores``.

    Each (mode, fraction) is retrained once per seed s (initialisation member 100,000 + s, shared across modes:
    paired design; ``seeds`` = 8 means seeds 0..7); the random deletion draws a new block set per seed. All
    retrainings run as one batched ensemble.
    """
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    fractions = tuple(float(f) for f in fractions)
    usable = usable_blocks(demos, cfg.block)
    grids, labels, members = [], [], []
    for fraction in fractions:
        for mode in ("top", "random", "bottom"):
            for s in seeds:
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
    demos: Demonstrations,
    frame_map: np.ndarray,
    cfg: ExplainConfig,
    percentile: float = 0.6,
    seeds: int | Sequence[int] = 10,
) -> dict[str, Any]:
    """Official Q2 variant (``BC.py --eval``): keep frames with importance ≤ the ``percentile`` quantile of the whole
    (D, T) map (0.6 removes the top 40 %), retrain once per seed (``seeds`` = 10 means 0..9); compare with random
    block masks that keep the same fraction (KEEP probability = ``percentile``)."""
    if not 0.0 < percentile < 1.0:
        raise ConfigError(f"the paper percentile must be in (0, 1), got {percentile}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    keep = percentile_keep_mask(frame_map, demos.valid, percentile)
    members = 300_000 + np.asarray(seeds)
    count = len(seeds)
    top_removed = retrain_on_masks(demos, np.repeat(keep[None], count, axis=0), cfg, members).mean(axis=1)
    grids = generate_grids(
        count, demos.num_demos, num_blocks(demos.length, cfg.block), percentile, cfg.seed + 1
    )
    random_removed = retrain_and_evaluate(demos, grids, cfg, members).mean(axis=1)
    return {
        "percentile": percentile,
        "seeds": seeds,
        "top_removed": {"mean": float(top_removed.mean()), "std": float(top_removed.std())},
        "random_removed": {"mean": float(random_removed.mean()), "std": float(random_removed.std())},
    }


def explain(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``r2rise explain``: the R2RISE loop on a demonstrations file (default: the embedded planted CartPole set);
    writes demos.npz, masks.npz, returns.npy, maps.npz, compressed_maps.csv, heatmaps and summary.json."""
    cfg = ExplainConfig(
        learner=args.learner,
        n_masks=args.n_masks,
        keep_p=args.keep_p,
        block=args.block,
        chunk=args.chunk,
        seed=args.seed,
        hidden=args.hidden,
        lr=args.lr,
        steps=args.steps,
        episodes=args.episodes,
        epsilon=args.epsilon,
        ridge=args.ridge,
        dtype=args.dtype,
        obs_scaling=args.obs_scaling,
        cnn_batch=args.cnn_batch,
        cnn_val_every=args.cnn_val_every,
        cnn_patience=args.cnn_patience,
        max_steps=args.max_steps,
        eval_envs=args.eval_envs,
        device=str(run.device),
    )
    if args.demos:
        demos = load_demos(args.demos)
    else:
        demos = make_demos("CartPole-v1", 5, 200, 0.1, 0.45, cfg.block, cfg.seed)
    save_demos(demos, run.path("demos.npz"))
    result = run_r2rise(demos, cfg)
    info = save_run(result, demos, run.path(""))
    p_value = info["q1_permutation"]["p_value"]
    log(f"r2rise explain: Q1 returns {info['q1_returns']}, permutation p = {p_value:.4f}")
    if "planted_auc" in info:
        log(f"r2rise explain: planted AUC {info['planted_auc']}")
    metrics = {"q1_returns": info["q1_returns"], "q1_permutation_p": p_value, "timings": result.timings}
    if "planted_auc" in info:
        metrics["planted_auc"] = info["planted_auc"]
    return metrics


def delete(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """``r2rise delete``: Q2 deletion curves for an explain run (deletion.json, deletion_curves.png)."""
    maps, _, summary_info = load_run(args.run)
    demos = load_demos(args.run / "demos.npz")
    known = {f.name for f in fields(ExplainConfig)}
    stored = {k: v for k, v in summary_info["config"].items() if k in known}
    cfg = replace(ExplainConfig(**stored), device=str(run.device))
    seeds = args.seeds or list(range(8))
    table = deletion_experiment(demos, maps[f"{args.estimator}_block"], cfg, args.fractions, seeds)
    if args.paper_percentile is not None:
        table["paper_percentile"] = paper_percentile_experiment(
            demos, maps[f"{args.estimator}_frame"], cfg, args.paper_percentile, seeds
        )
        log(f"r2rise delete: official percentile variant {table['paper_percentile']}")
    table["estimator"] = args.estimator
    table["run"] = str(args.run)
    run.write_json("deletion.json", table)
    curves = {
        m: [(r["fraction"], r["mean"], r["std"]) for r in table[m]] for m in ("top", "random", "bottom")
    }
    plots.deletion_curves(curves, run.path("deletion_curves.png"), f"Q2 deletion ({args.estimator})")
    for m in ("top", "random", "bottom"):
        log(f"remove {m:6s}: " + ", ".join(f"{r['fraction']:.0%} → {r['mean']:.1f}" for r in table[m]))
    means = {m: {str(r["fraction"]): r["mean"] for r in table[m]} for m in ("top", "random", "bottom")}
    return {"deletion_mean_return": means, "estimator": args.estimator}
