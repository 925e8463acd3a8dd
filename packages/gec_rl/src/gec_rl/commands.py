"""Package verbs besides ``regret``: ``envs``, ``solve``, ``bench plan`` and ``reproduce``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gec_rl.envs import ENV_NAMES, Simulator, make_env
from gec_rl.planning import backward_induction, evaluate_policy, greedy_policy


def envs_main(argv: list[str]) -> int:
    """List the supported envs with S, A, default H, V*_1(μ) at that H and the reward rescale."""
    parser = argparse.ArgumentParser(prog="gec-rl envs", description=envs_main.__doc__)
    parser.add_argument("--H", type=int, default=None, help="horizon (default: each env's own)")
    args = parser.parse_args(argv)
    print("| env | S | A | H | V*_1(mu) | reward range [r_lo, r_hi] |")
    print("|---|---|---|---|---|---|")
    seen = set()
    for name in ENV_NAMES:
        mdp = make_env(name, horizon=args.H)
        if mdp.name in seen:
            continue
        seen.add(mdp.name)
        _, V = backward_induction(mdp.P, mdp.R, mdp.horizon)
        print(
            f"| {name} | {mdp.S} | {mdp.A} | {mdp.horizon} | {V[0] @ mdp.mu:.4f} | [{mdp.r_lo:g}, {mdp.r_hi:g}] |"
        )
    return 0


def monte_carlo_return(mdp, policy: np.ndarray, episodes: int, seed: int) -> tuple[float, float]:
    """Mean and standard error of the rescaled return of ``policy`` over sampled episodes (via env.step)."""
    rng = np.random.default_rng(seed + 7)
    sim = Simulator(mdp, seed)
    H = policy.shape[0]
    deterministic = bool(np.all(policy.max(-1) == 1.0))
    greedy = policy.argmax(-1)
    cdf = np.cumsum(policy, -1)
    returns = np.empty(episodes)
    for i in range(episodes):
        s = sim.reset()
        total = 0.0
        for h in range(H):
            if deterministic:
                a = int(greedy[h, s])
            else:
                a = min(int(np.searchsorted(cdf[h, s], rng.random(), side="right")), mdp.A - 1)
            s, reward = sim.step(a)
            total += reward
        returns[i] = total
    return float(returns.mean()), float(returns.std(ddof=1) / np.sqrt(episodes))


def solve_main(argv: list[str]) -> int:
    """V*, the optimal policy's value, and optionally a Monte-Carlo check (--mc N rollouts)."""
    parser = argparse.ArgumentParser(prog="gec-rl solve", description=solve_main.__doc__)
    parser.add_argument("--env", default="frozenlake", help=f"one of {', '.join(ENV_NAMES)}")
    parser.add_argument("--H", type=int, default=20)
    parser.add_argument("--mc", type=int, default=0, help="Monte-Carlo rollouts of pi* (0 = none)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        mdp = make_env(args.env, horizon=args.H)
    except ValueError as err:
        parser.error(str(err))
    Q, V = backward_induction(mdp.P, mdp.R, args.H)
    v_star = float(V[0] @ mdp.mu)
    out = {
        "env": args.env,
        "S": mdp.S,
        "A": mdp.A,
        "H": args.H,
        "v_star": v_star,
        "v_star_original_units": v_star * (mdp.r_hi - mdp.r_lo) + args.H * mdp.r_lo,
    }
    pi = greedy_policy(Q)
    out["v_pi_star_eval"] = float(evaluate_policy(mdp.P, mdp.R, pi)[0] @ mdp.mu)
    if args.mc:
        mean, se = monte_carlo_return(mdp, pi, args.mc, args.seed)
        out.update({"mc_mean": mean, "mc_se": se, "mc_z": (mean - v_star) / se if se > 0 else 0.0})
    print(json.dumps(out, indent=2))
    return 0


def bench_main(argv: list[str]) -> int:
    """Benchmarks: `bench plan` times dense/sparse sampling and batched/reference planning (writes bench.json)."""
    from gec_rl.bench import bench_plan_main

    if not argv or argv[0] != "plan":
        print("usage: gec-rl bench plan [--env taxi --M 8 --H 20 --out DIR]")
        return 2
    return bench_plan_main(argv[1:])


def reproduce_main(argv: list[str]) -> int:
    """The spec §5 experiment: the default regret study plus eta = 1/2, with the behavioural checks (results.md)."""
    from gec_rl.reproduce import reproduce

    parser = argparse.ArgumentParser(prog="gec-rl reproduce", description=reproduce_main.__doc__)
    parser.add_argument("--quick", action="store_true", help="T = 500 episodes, 2 seeds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=None, help="output folder (default: a new run directory)")
    args = parser.parse_args(argv)
    return reproduce(quick=args.quick, workers=args.workers, out=Path(args.out) if args.out else None)
