"""How far the finite-M SIR sampler of ``ops_mb`` is from the OPS posterior it approximates (issue #18).

``ops_mb`` draws M models from the tempered conjugate posterior p_η = Π Dir(α₀ + ηN) and picks model i with
probability softmax(γ V_i): the selected model's value has expectation E_M[V_sel] = E[Σ_i w_i V_i] with
w = softmax(γ V_1..M). The OPS posterior p ∝ p_η·exp(γV) has E_p[V] = E_{p_η}[V e^{γV}]/E_{p_η}[e^{γV}]. As M → ∞
E_M[V_sel] → E_p[V] (SIR is consistent), but for fixed M it can never exceed E[max_i V_i]: when γ·sd(V) is large
the SIR becomes a soft max-of-M and cannot reach the posterior's optimistic tail.

For a fixed posterior (the counts of ``snapshot_episodes`` PSRL episodes) one pool of n = ``reference`` draws is
planned exactly; E_M[V_sel] is the mean of Σ w V over the ⌊n/M⌋ disjoint groups of M draws, and the reference
E_p[V] is the self-normalised estimate over the whole pool (SIR with M = n), reported with its effective sample
size ESS = 1/Σw² (the reference is reliable only when ESS is large; a small ESS means the posterior's tail is
beyond even n draws).
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from gec_rl.agents import make_agent
from gec_rl.envs import make_env
from gec_rl.planning import expected_reward, plan
from gec_rl.posteriors import sample_dirichlet_rows, sir_probabilities
from gec_rl.regret import job_seed, run_agent, task_for

#: below this ESS the high-M reference is flagged as unreliable
MIN_RELIABLE_ESS = 100.0


def posterior_counts(env: str, episodes: int, H: int, seed: int) -> np.ndarray:
    """N(s, a, s') after ``episodes`` PSRL episodes on ``env`` (the fixed posterior of the study)."""
    mdp = make_env(env, horizon=H)
    agent = make_agent("psrl", task_for(mdp, H, episodes), np.random.default_rng(job_seed(seed, env, "psrl")))
    run_agent(mdp, agent, episodes, H, seed=seed)
    return agent.counts.copy()


def draw_values(
    rng: np.random.Generator,
    concentration: np.ndarray,
    r: np.ndarray,
    mu: np.ndarray,
    H: int,
    n: int,
    chunk: int = 2048,
) -> np.ndarray:
    """V_{1,f}(μ) of n models f ~ Π Dir(concentration) (dense sampling, batched planning), shape (n,)."""
    out = np.empty(n)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        P = sample_dirichlet_rows(rng, concentration, m)
        _, V = plan(P, expected_reward(P, r), H)
        out[start : start + m] = V[:, 0] @ mu
    return out


def sir_expectation(values: np.ndarray, M: int, gamma: float) -> tuple[float, float, float]:
    """E_M[V_sel] = mean over the disjoint groups of M values of Σ softmax(γV)·V, its standard error, and
    E[max of M]; ``values`` is a pool of i.i.d. posterior values."""
    groups = values[: (len(values) // M) * M].reshape(-1, M)
    if math.isinf(gamma):
        selected = groups.max(-1)
    else:
        logits = gamma * groups
        w = np.exp(logits - logits.max(-1, keepdims=True))
        selected = (w * groups).sum(-1) / w.sum(-1)
    se = float(selected.std(ddof=1) / math.sqrt(len(selected))) if len(selected) > 1 else math.nan
    return float(selected.mean()), se, float(groups.max(-1).mean())


def reference_expectation(values: np.ndarray, gamma: float) -> tuple[float, float, float]:
    """Self-normalised E_p[V] over the whole pool, its delta-method standard error and the ESS 1/Σw²."""
    w = sir_probabilities(values, gamma)
    mean = float(w @ values)
    se = float(np.sqrt(np.sum(w**2 * (values - mean) ** 2)))
    return mean, se, float(1.0 / np.sum(w**2))


def bias_rows(
    env: str,
    Ms: list[int],
    gammas: list[str],
    eta: float,
    snapshot_episodes: int,
    n: int,
    T: int,
    H: int,
    seed: int,
) -> list[dict[str, Any]]:
    """One row per (γ, M) on ``env``: E_M[V_sel] ± SE, E[max of M], the reference E_p[V] with its ESS, and the
    bias E_M[V_sel] − E_p[V]."""
    from gec_rl.theory import theory_gamma

    mdp = make_env(env, horizon=H)
    counts = posterior_counts(env, snapshot_episodes, H, seed)
    alpha0 = 1.0 / mdp.S
    rng = np.random.default_rng(job_seed(seed, env, "sir_bias"))
    values = draw_values(rng, alpha0 + eta * counts, mdp.r, mdp.mu, H, n)
    rows = []
    for spec in gammas:
        gamma = theory_gamma(eta, T, mdp.S, mdp.A, H) if spec == "theory" else float(spec)
        ref, ref_se, ess = reference_expectation(values, gamma)
        for M in Ms:
            mean, se, v_max = sir_expectation(values, M, gamma)
            rows.append(
                {
                    "env": env, "gamma": gamma, "gamma_spec": spec, "M": M, "E_V_sel": mean, "E_V_sel_se": se,
                    "E_max_M": v_max, "reference": ref, "reference_se": ref_se, "ess": ess, "bias": mean - ref,
                    "posterior_mean": float(values.mean()), "v_star": None, "pool": n,
                    "reliable": bool(ess >= MIN_RELIABLE_ESS),
                }
            )  # fmt: skip
    from gec_rl.regret import ExactEvaluator

    v_star = ExactEvaluator(mdp, H).v_star
    for row in rows:
        row["v_star"] = v_star
    return rows


def bias_table(rows: list[dict[str, Any]]) -> Any:
    from paperlab_core.results import Table

    table = Table(
        ["env", "γ", "M", "E_M[V_sel]", "E[max of M]", "E_p[V] (reference)", "ESS", "bias E_M − E_p",
         "posterior mean", "V*"],
        formats={"γ": ".2f", "E[max of M]": ".4f", "ESS": ".0f", "posterior mean": ".4f", "V*": ".4f"},
        title="Finite-M SIR bias at a fixed posterior (ops_mb)",
    )  # fmt: skip
    for r in rows:
        flag = "" if r["reliable"] else " (ESS < 100: unreliable)"
        table.add(r["env"], r["gamma"], r["M"], f"{r['E_V_sel']:.4f} ± {r['E_V_sel_se']:.4f}", r["E_max_M"],
                  f"{r['reference']:.4f} ± {r['reference_se']:.4f}{flag}", r["ess"], f"{r['bias']:+.4f}",
                  r["posterior_mean"], r["v_star"])  # fmt: skip
    return table


def sir_bias(args: argparse.Namespace, run: Any) -> dict[str, Any]:
    """``gec-rl sir-bias``: writes ``results.json`` (table ``bias``, one record per row) and prints the table."""
    from paperlab_core.logging import write_json_atomic
    from paperlab_core.results import results_record
    from paperlab_core.runtime import environment_line

    for spec in args.gammas:
        if spec != "theory":
            try:
                float(spec)
            except ValueError:
                from paperlab_core.errors import ConfigError

                raise ConfigError(f"--gammas: {spec!r} is neither a number nor 'theory'") from None
    rows = []
    for env in args.envs:
        rows += bias_rows(env, list(args.Ms), list(args.gammas), args.eta, args.snapshot_episodes,
                          args.reference, args.data_episodes, args.data_horizon, args.seed)  # fmt: skip
    table = bias_table(rows)
    records = [{"key": f"{r['env']}/gamma={r['gamma_spec']}/M={r['M']}", "params": {k: r[k] for k in
                ("env", "gamma_spec", "M")}, "result": r} for r in rows]  # fmt: skip
    document = results_record(run.command, environment_line(run.env), [args.seed], {"bias": table}, records)
    write_json_atomic(run.dir / "results.json", document)
    print(table.to_markdown())
    return {"rows": len(rows)}
