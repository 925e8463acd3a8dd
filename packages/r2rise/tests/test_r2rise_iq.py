"""``iq_mlp``: offline inverse soft-Q imitation (IQ-Learn χ²) as a batched ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from r2rise.evaluate import Evaluator
from r2rise.iq import CHI2_ALPHA, GAMMA, fit_iq_ensemble, iq_losses, transitions
from r2rise.learners import Normaliser, init_member, member_module, weighted_ce
from r2rise.masks import frame_weights, generate_masks


def _stacked(members: list[int], obs_dim: int = 4, num_actions: int = 3) -> dict[str, torch.Tensor]:
    inits = [init_member("bc_mlp", obs_dim, num_actions, 8, 0, m) for m in members]
    return {k: torch.stack([p[k] for p in inits]) for k in inits[0]}


def test_transitions_skip_padding_and_demo_ends():
    valid = np.array([[True, True, True, False], [True, True, False, False]])
    successor, has_next = transitions(valid)
    # valid frames in flat order: 0, 1, 2 (demo 0) and 4, 5 (demo 1)
    np.testing.assert_array_equal(successor, [1, 2, 3, 5, 6])
    np.testing.assert_array_equal(has_next, [True, True, False, True, False])


def test_iq_loss_equals_a_per_frame_loop():
    """The batched loss equals the textbook per-frame computation with one ``nn.Module`` per model:
    y = Q(s, a) − γ·logsumexp Q(s'), loss = mean over kept frames of −y + (V(s) − γV(s')) + y²/(4α)."""
    rng = np.random.default_rng(0)
    x, x_next = rng.normal(size=(7, 4)), rng.normal(size=(7, 4))
    y = rng.integers(0, 3, 7)
    weights = np.array([[1, 0, 1, 1, 0, 1, 1], [0, 1, 1, 0, 1, 0, 0]], dtype=np.float64)
    got = iq_losses(_stacked([0, 1]), *(torch.as_tensor(a) for a in (x, x_next, y, weights)))
    for m in range(2):
        module = member_module("bc_mlp", 4, 3, 8, 0, m, torch.float64)
        terms = []
        with torch.no_grad():
            for f in np.flatnonzero(weights[m]):
                q, q_next = module(torch.as_tensor(x[f])), module(torch.as_tensor(x_next[f]))
                v, v_next = torch.logsumexp(q, 0).item(), torch.logsumexp(q_next, 0).item()
                reward = q[y[f]].item() - GAMMA * v_next
                terms.append(-reward + (v - GAMMA * v_next) + reward**2 / (4 * CHI2_ALPHA))
        assert got[m].item() == pytest.approx(np.mean(terms), rel=1e-12, abs=1e-12)


def test_iq_loss_is_behaviour_cloning_plus_the_chi2_term():
    """Without the χ² term (α → ∞) the objective is exactly BC's cross-entropy of softmax(Q): the identity
    −y + V(s) − γV(s') = V(s) − Q(s, a) the module docstring states."""
    rng = np.random.default_rng(1)
    x, x_next = torch.as_tensor(rng.normal(size=(9, 4))), torch.as_tensor(rng.normal(size=(9, 4)))
    y = torch.as_tensor(rng.integers(0, 3, 9))
    weights = torch.as_tensor((rng.random((3, 9)) < 0.6).astype(np.float64))
    params = _stacked([0, 1, 2])
    from r2rise.learners import ensemble_logits

    bc = weighted_ce(ensemble_logits("bc_mlp", params, x), y, weights)
    torch.testing.assert_close(
        iq_losses(params, x, x_next, y, weights, alpha=1e30), bc, rtol=1e-12, atol=1e-12
    )
    assert (iq_losses(params, x, x_next, y, weights) > bc).all()


def _fit_inputs(demos):
    obs, actions, _ = demos.frames()
    successor, has_next = transitions(demos.valid)
    return obs, demos.obs.reshape(-1, 4)[successor], has_next, actions


def test_models_are_independent_and_dropped_frames_do_not_matter(planted_demos):
    """A model's parameters do not depend on the other models in the call, nor on the labels of its dropped
    frames (float64; the fits use different padding widths, hence the 1e-10 rather than exact equality)."""
    obs, next_obs, has_next, actions = _fit_inputs(planted_demos)
    weights = frame_weights(generate_masks(3, (5, 200), 0.5, 10, seed=2), planted_demos.valid)
    norm = Normaliser.for_env("CartPole-v1", obs)
    together = fit_iq_ensemble(obs, next_obs, has_next, actions, weights, 2, steps=15, normaliser=norm)
    alone = fit_iq_ensemble(
        obs, next_obs, has_next, actions, weights[1:2], 2, steps=15, members=[1], normaliser=norm
    )
    flipped = actions.copy()
    flipped[weights[1] == 0] ^= 1
    relabelled = fit_iq_ensemble(
        obs, next_obs, has_next, flipped, weights[1:2], 2, steps=15, members=[1], normaliser=norm
    )
    for key, value in together.params.items():
        torch.testing.assert_close(value[1:2], alone.params[key], rtol=0, atol=1e-10)
        torch.testing.assert_close(relabelled.params[key], alone.params[key], rtol=0, atol=0)


def test_iq_on_clean_demonstrations_balances_the_pole(clean_demos):
    """All frames kept: the greedy-in-Q policy imitates the expert (return ≥ 475 on 4 episodes, as spec §6.5 asks
    of BC)."""
    obs, next_obs, has_next, actions = _fit_inputs(clean_demos)
    policy = fit_iq_ensemble(
        obs, next_obs, has_next, actions, np.ones((1, len(obs))), 2,
        normaliser=Normaliser.for_env("CartPole-v1", obs),
    )  # fmt: skip
    assert Evaluator("CartPole-v1", episodes=4).evaluate(policy, 1).mean() >= 475
