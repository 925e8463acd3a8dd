"""Issue #18: the GEC quantities (Hellinger, in-sample loss, training error, empirical GEC), the γ schedules,
the SIR bias study and sampler tests that go through the agents."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gec_rl.agents import make_agent
from gec_rl.cli import main
from gec_rl.envs import make_env
from gec_rl.posteriors import gamma_at
from gec_rl.regret import run_agent, task_for
from gec_rl.sir_bias import reference_expectation, sir_expectation
from gec_rl.theory import gec_estimate, hellinger_squared, theory_gamma


def test_hellinger_squared_closed_forms() -> None:
    """D_H² = 1 − BC(P, Q) with the Bhattacharyya coefficient BC = Σ√(p q); Bernoulli written out by hand."""
    p, q = 0.3, 0.8
    bernoulli = 1 - math.sqrt(p * q) - math.sqrt((1 - p) * (1 - q))
    assert hellinger_squared(np.array([p, 1 - p]), np.array([q, 1 - q])) == pytest.approx(
        bernoulli, abs=1e-15
    )
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    assert hellinger_squared(a, b) == pytest.approx(1 - np.sqrt(a * b).sum(), abs=1e-14)
    assert hellinger_squared(a, a) == 0.0
    assert hellinger_squared(np.array([1.0, 0, 0]), np.array([0, 0.5, 0.5])) == pytest.approx(1.0)


def test_gec_estimate_closed_form_and_minimality() -> None:
    pe, loss = np.array([1.0, 1.0]), np.array([0.0, 4.0])
    assert gec_estimate(pe, loss, H=1, burn_in=False) == pytest.approx(1.0)  # (1 + 1)² / 4
    assert gec_estimate(-pe, loss, H=1) == 0.0
    rng = np.random.default_rng(1)
    pe, loss, H = rng.random(50), rng.random(50) * 3, 2
    d = gec_estimate(pe, loss, H)
    cum_pe, cum_l, tau = np.cumsum(pe), np.cumsum(loss), np.arange(1, 51)

    def holds(x: float) -> bool:  # the defining inequality, written out again
        return all(
            cum_pe[i] <= math.sqrt(x * cum_l[i]) + 2 * min(H * x, H**2 * tau[i]) + 1e-12 for i in range(50)
        )

    assert holds(d) and not holds(0.999 * d)


def test_diagnostics_against_independent_computation(random_mdp) -> None:
    """loss_t = Σ N log(P*/P_f) over the data of rounds < t and train_error_t = Σ_{s<t} Σ_h E_{π_s} D_H²(P_f, P*),
    recomputed with explicit loops from the captured models, policies and transitions."""
    mdp, H, T = random_mdp, 3, 8
    agent = make_agent("psrl", task_for(mdp, H, T), np.random.default_rng(2))
    models, policies, transitions = [], [], []
    begin, observe = agent.begin_episode, agent.observe

    def capture_begin(t: int) -> None:
        begin(t)
        models.append(agent.hypothesis_model().copy())
        policies.append(agent.policy().copy())
        transitions.append([])

    def capture_observe(h, s, a, r, s_next) -> None:
        transitions[-1].append((s, a, s_next))
        observe(h, s, a, r, s_next)

    agent.begin_episode, agent.observe = capture_begin, capture_observe  # type: ignore[method-assign]
    res = run_agent(mdp, agent, T, H, seed=3)
    S, A = mdp.S, mdp.A
    for t in range(T):
        P_f = models[t]
        loss = sum(math.log(mdp.P[s, a, s2] / P_f[s, a, s2]) for ep in transitions[:t] for s, a, s2 in ep)
        train = 0.0
        for pi in policies[:t]:
            d = mdp.mu.copy()
            for h in range(H):
                nxt = np.zeros(S)
                for s in range(S):
                    for a in range(A):
                        w = d[s] * pi[h, s, a]
                        train += (
                            w
                            * 0.5
                            * sum(
                                (math.sqrt(P_f[s, a, k]) - math.sqrt(mdp.P[s, a, k])) ** 2 for k in range(S)
                            )
                        )
                        nxt += w * mdp.P[s, a]
                d = nxt
        assert res.loss[t] == pytest.approx(loss, abs=1e-9)
        assert res.train_error[t] == pytest.approx(train, abs=1e-12)
    np.testing.assert_allclose(res.optimism_gap + res.prediction_error, res.inst_regret, atol=1e-12)


def test_gamma_schedules_and_theory_gamma() -> None:
    assert [gamma_at(t, "linear", 2.0) for t in (1, 2, 5)] == [0.0, 2.0, 8.0]
    assert gamma_at(9, "sqrt_t", 2.0) == 6.0 and gamma_at(9, "constant", 2.0) == 2.0
    assert gamma_at(1, "linear", math.inf) == math.inf
    mdp = make_env("riverswim", horizon=20)
    agent = make_agent("ops_mb:eta=0.5:gamma=theory:gamma_schedule=constant", task_for(mdp, 20, 2000),
                       np.random.default_rng(0))  # fmt: skip
    assert agent.gamma == pytest.approx(theory_gamma(0.5, 2000, mdp.S, mdp.A, 20))
    linear = make_agent("ops_mb:gamma_schedule=linear", task_for(mdp, 20, 10), np.random.default_rng(0))
    run_agent(mdp, linear, 3, 20, seed=0)
    assert linear.last_gamma == 2.0  # γ₀·(t − 1) at t = 3


def test_eta_half_through_the_agent() -> None:
    """The agent's own draws (γ = 0, M = 1): the selected model's transition row has twice the variance at η = ½."""
    mdp = make_env("riverswim", horizon=5)
    draws = {}
    for eta in (1.0, 0.5):
        agent = make_agent(f"ops_mb:M=1:gamma=0:eta={eta}:sampler=dense", task_for(mdp, 5, 10),
                           np.random.default_rng(7))  # fmt: skip
        agent.counts = 400 * mdp.P
        values = []
        for t in range(5000):
            agent.begin_episode(t + 1)
            values.append(agent.hypothesis_model()[2, 1, 3])  # RiverSwim "right" from s = 2: P* = 0.35
        draws[eta] = np.array(values)
    ratio = draws[0.5].var() / draws[1.0].var()
    assert 1.8 <= ratio <= 2.2, ratio  # the variance estimates have ~2% relative SE each (n = 5000)
    assert abs(draws[0.5].mean() - 0.35) < 0.01


def test_ops_mf_conditional_sampler_at_the_agents_m() -> None:
    """ops_mf (conditional, M = 8, fixed γ): the agent's mean selected V₁ equals E[Σ softmax(γV)V] over groups of 8
    independent exact draws, and sits strictly between the prior-draw mean and E[max of 8]."""
    mdp = make_env("riverswim", horizon=4)
    agent = make_agent(
        "ops_mf:M=8:gamma=3:gamma_schedule=constant", task_for(mdp, 4, 60), np.random.default_rng(1)
    )
    run_agent(mdp, agent, 60, 4, seed=1)
    selected = []
    for _ in range(1500):
        agent.begin_episode(61)
        selected.append(agent.model_value)
    pool = agent.sample_conditional(8 * 3000)[:, 0].max(-1) @ mdp.mu
    expected, se, v_max = sir_expectation(pool, 8, 3.0)
    sel = np.array(selected)
    z = (sel.mean() - expected) / math.hypot(sel.std() / math.sqrt(len(sel)), se)
    assert abs(z) < 4, (sel.mean(), expected)
    assert pool.mean() + 0.05 < sel.mean() < v_max - 0.05


def test_lmc_optimism_layer_with_a_non_exact_preconditioner() -> None:
    """h = 1 layer of ops_linear_lmc with γ > 0 (one state, two actions, one-hot θ ∈ R²): 4000 ULA chains through
    the agent's own gradient, preconditioned by 0.5·I (not the covariance), against moments by 2-D quadrature of
    exp(−U) with U = ½θᵀAθ − bᵀθ − γ τ logsumexp(θ/τ)."""
    from gec_rl.agents.base import Task
    from gec_rl.agents.linear import ula

    task = Task(S=1, A=2, H=1, r=np.zeros((1, 2, 1)), mu=np.ones(1), T=10)
    agent = make_agent(
        "ops_linear_lmc:gamma=2:gamma_schedule=constant:sigma0=2", task, np.random.default_rng(0)
    )
    agent.next_counts[0, 0, 0, 0] = 3.0  # action 0 observed 3 times, action 1 never: θ_1 only has the prior
    agent.r_table = torch.tensor([[[0.6], [0.0]]], dtype=torch.float64)
    precision, b = agent.layer_system(0, None)
    grad = agent.layer_grad(0, precision, b, gamma=2.0)
    gen = torch.Generator().manual_seed(0)
    theta = ula(torch.zeros(4000, 2, dtype=torch.float64), grad, 0.02, 3000, gen,
                precond=torch.full((2,), 0.5, dtype=torch.float64))  # fmt: skip
    grid = np.linspace(-12, 20, 1601)
    t0, t1 = np.meshgrid(grid, grid, indexing="ij")
    A, bb, tau = precision.numpy(), b.numpy(), agent.tau
    soft = tau * np.logaddexp(t0 / tau, t1 / tau)
    log_p = -(0.5 * (A[0] * t0**2 + A[1] * t1**2) - bb[0] * t0 - bb[1] * t1) + 2.0 * soft
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    mean = np.array([(p * t0).sum(), (p * t1).sum()])
    sd = np.sqrt([(p * (t0 - mean[0]) ** 2).sum(), (p * (t1 - mean[1]) ** 2).sum()])
    got = theta.mean(0).numpy()
    # effective step 0.01 (ε·λ_max ≈ 0.06: ULA's O(ε) bias ≈ 2% of sd); 3000 steps ≈ 7 relaxation times of the
    # flattest direction (curvature σ₀⁻² = 0.25); 0.05·sd covers the bias, the last term is 3 SE of 4000 chains
    assert np.all(np.abs(got - mean) <= 0.05 * sd + 3 * sd / math.sqrt(4000)), (got, mean)
    assert np.allclose(theta.std(0).numpy(), sd, rtol=0.06)
    assert mean[1] > 2.0 * 0.5 * 0.25  # the optimism term visibly lifts the unvisited action (prior mean 0)


def test_sir_bias_helpers_on_a_gaussian_pool() -> None:
    """V ~ N(m, s²) tilted by e^{γV} is N(m + γs², s²): the self-normalised reference recovers it, the SIR
    expectation is increasing in M and never exceeds E[max of M]."""
    rng = np.random.default_rng(0)
    m, s, gamma = 1.0, 0.2, 5.0
    pool = rng.normal(m, s, 2**16)
    ref, se, ess = reference_expectation(pool, gamma)
    assert abs(ref - (m + gamma * s**2)) < 4 * se and ess > 1000
    means = [sir_expectation(pool, M, gamma)[0] for M in (1, 8, 64, 512)]
    assert means[0] == pytest.approx(pool.mean()) and all(np.diff(means) > 0)
    assert all(sir_expectation(pool, M, gamma)[0] <= sir_expectation(pool, M, gamma)[2] for M in (8, 64))
    assert means[-1] == pytest.approx(ref, abs=0.01)


def test_decompose_and_sir_bias_verbs(tmp_path: Path, capsys) -> None:
    args = ["--envs", "riverswim", "--agents", "ops_mb,eps_greedy_q", "--seeds", "0", "--data.episodes", "12",
            "--data.horizon", "6", "--workers", "1", "--out", str(tmp_path / "d")]  # fmt: skip
    assert main(["decompose", *args]) == 0
    out = capsys.readouterr().out
    assert "Σ optimism gap" in out and "| riverswim | ops_mb |" in out
    tables = json.loads((tmp_path / "d" / "results.json").read_text())["tables"]
    assert set(tables) == {"summary", "decomposition"}
    assert main(["sir-bias", "--envs", "riverswim", "--Ms", "2,8", "--gammas", "1,theory", "--reference", "256",
                 "--snapshot-episodes", "5", "--data.horizon", "6", "--out", str(tmp_path / "b")]) == 0  # fmt: skip
    bias = json.loads((tmp_path / "b" / "results.json").read_text())
    assert len(bias["tables"]["bias"]["rows"]) == 4 and len(bias["records"]) == 4
    assert main(["sir-bias", "--gammas", "big", "--out", str(tmp_path / "c")]) == 1


@pytest.mark.parametrize(
    ("agent", "flags", "overrides", "steps_per_episode"),
    [
        ("ops_linear_lmc", ["--model.lmc_steps", "4"], {"steps": 4}, 5 * 4),  # layers × steps per layer
        ("ops_mf", ["--model.mf_sampler", "langevin", "--model.mf_mala", "false"],
         {"sampler": "langevin", "mala": False}, 100),  # langevin_steps
        ("ops_mf", ["--model.mf_sampler", "langevin"], {"sampler": "langevin"}, 100),  # MALA: one per proposal
    ],
)  # fmt: skip
def test_train_langevin_updates_go_through_the_modules_optimiser(
    agent: str, flags: list[str], overrides: dict, steps_per_episode: int, tmp_path: Path, monkeypatch
) -> None:
    """`train` with a Langevin sampler: every update is a step of the LightningModule's optimiser (counted), and
    the regret equals the regret study's run of the same seed (which steps a fresh optimiser)."""
    import csv

    from gec_rl.module import RegretModule
    from gec_rl.optim import Langevin
    from gec_rl.regret import run_job

    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    steps, optimisers = [], []
    step, configure = Langevin.step, RegretModule.configure_optimizers
    monkeypatch.setattr(Langevin, "step", lambda self, closure=None: steps.append(1) or step(self, closure))
    monkeypatch.setattr(
        RegretModule,
        "configure_optimizers",
        lambda self: optimisers.append(configure(self)) or optimisers[-1],
    )
    args = ["train", "--model.agent", agent, *flags, "--data.env", "riverswim", "--data.episodes", "3",
            "--data.horizon", "5", "--run_name", "lv", "--trainer.enable_progress_bar=false"]  # fmt: skip
    assert main(args) == 0
    assert len(optimisers) == 1 and isinstance(optimisers[0], Langevin)
    assert len(steps) == 3 * steps_per_episode
    (run_dir,) = (tmp_path / "runs" / "gec_rl").glob("*-lv")
    rows = list(csv.DictReader((run_dir / "regret.csv").open()))
    steps.clear()
    study = run_job("riverswim", agent, 0, 3, 5, **overrides)  # the seed derives from the agent id
    assert len(steps) == 3 * steps_per_episode
    np.testing.assert_allclose([float(r["inst_regret"]) for r in rows], study.inst_regret, rtol=0, atol=1e-12)
