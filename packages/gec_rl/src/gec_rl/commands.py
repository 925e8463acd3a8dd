"""Package verbs ``envs`` and ``solve`` (numpy only), and the Monte-Carlo return used to check exact values."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from gec_rl.envs import ENV_NAMES, Simulator, make_env
from gec_rl.planning import backward_induction, evaluate_policy, greedy_policy


def envs(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """List the supported envs with S, A, default H, V*_1(μ) at that H and the reward rescale."""
    print("| env | S | A | H | V*_1(mu) | reward range [r_lo, r_hi] |")
    print("|---|---|---|---|---|---|")
    seen, rows = set(), []
    for name in ENV_NAMES:
        mdp = make_env(name, horizon=args.data_horizon)
        if mdp.name in seen:
            continue
        seen.add(mdp.name)
        _, V = backward_induction(mdp.P, mdp.R, mdp.horizon)
        v_star = float(V[0] @ mdp.mu)
        rows.append({"env": name, "S": mdp.S, "A": mdp.A, "H": mdp.horizon, "v_star": v_star})
        print(f"| {name} | {mdp.S} | {mdp.A} | {mdp.horizon} | {v_star:.4f} | [{mdp.r_lo:g}, {mdp.r_hi:g}] |")
    return {"envs": rows}


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


def solve(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """V*, the optimal policy's value, and optionally a Monte-Carlo check (--mc N rollouts)."""
    H = args.data_horizon
    mdp = make_env(args.data_env, horizon=H)
    Q, V = backward_induction(mdp.P, mdp.R, H)
    v_star = float(V[0] @ mdp.mu)
    out: dict[str, Any] = {
        "env": args.data_env,
        "S": mdp.S,
        "A": mdp.A,
        "H": H,
        "v_star": v_star,
        "v_star_original_units": v_star * (mdp.r_hi - mdp.r_lo) + H * mdp.r_lo,
    }
    pi = greedy_policy(Q)
    out["v_pi_star_eval"] = float(evaluate_policy(mdp.P, mdp.R, pi)[0] @ mdp.mu)
    if args.mc:
        mean, se = monte_carlo_return(mdp, pi, args.mc, args.seed)
        out.update({"mc_mean": mean, "mc_se": se, "mc_z": (mean - v_star) / se if se > 0 else 0.0})
    print(json.dumps(out, indent=2))
    return {"solve": out}
