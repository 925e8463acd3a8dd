from __future__ import annotations

import numpy as np
import pytest
import torch
from r2rise.demos import make_demos
from r2rise.evaluate import Evaluator
from r2rise.learners import (
    Normaliser,
    adam_update,
    ensemble_grads,
    ensemble_logits,
    fit_ensemble,
    fit_single,
    frame_batch,
    from_module_layout,
    gather_kept,
    init_member,
    member_module,
    module_params,
    to_module_layout,
    weighted_ce,
)
from r2rise.masks import frame_weights, generate_masks


@pytest.mark.parametrize(("learner", "chunk"), [("bc_mlp", None), ("bc_mlp", 2), ("bc_linear", 3)])
def test_batched_equals_separate_fits(planted_demos, learner, chunk):
    """Spec §7 "same results" in float64: max |Δparameter| ≤ 1e-10 against one nn.Module + torch.optim.Adam per
    mask, whatever the grouping (groups pad each model's frame list to the group's longest)."""
    obs, actions, _ = planted_demos.frames()
    masks = generate_masks(5, (planted_demos.num_demos, planted_demos.length), 0.5, 10, seed=9)
    weights = frame_weights(masks, planted_demos.valid)
    assert len(set(weights.sum(axis=1))) > 1  # different kept counts, so padding is exercised
    norm = Normaliser.for_env("CartPole-v1", obs)
    ensemble = fit_ensemble(
        obs,
        actions,
        weights,
        2,
        learner,
        steps=200,
        seed=3,
        normaliser=norm,
        dtype=torch.float64,
        chunk=chunk,
    )
    for m in range(5):
        single = fit_single(
            obs,
            actions,
            weights[m] > 0,
            2,
            learner,
            steps=200,
            seed=3,
            member=m,
            normaliser=norm,
            dtype=torch.float64,
        )
        for key, value in single.params.items():
            np.testing.assert_allclose(ensemble.params[key][m].numpy(), value[0].numpy(), atol=1e-10, rtol=0)


@pytest.mark.parametrize("learner", ["bc_mlp", "bc_linear"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("num_actions", [2, 3])
def test_hand_written_gradients_equal_autograd(learner, dtype, num_actions):
    """ensemble_grads on gathered, padded frame lists = autograd of Σ_m weighted_ce on the full frame set."""
    gen = torch.Generator().manual_seed(0)
    frames, num_models = 40, 3
    obs = torch.randn(frames, 4, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, num_actions, (frames,), generator=gen)
    weights = (torch.rand(num_models, frames, generator=gen) < 0.5).double()
    params = {
        k: torch.stack([init_member(learner, 4, num_actions, 8, 1, m)[k] for m in range(num_models)])
        for k in init_member(learner, 4, num_actions, 8, 1, 0)
    }
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    weighted_ce(ensemble_logits(learner, leaves, obs), labels, weights).sum().backward()
    order, counts = gather_kept(weights.numpy())
    x, x_t, target, scale = frame_batch(obs.to(dtype), labels, order, counts, num_actions)
    assert torch.all(x[..., -1] == 1) and torch.allclose(scale.sum(dim=1).double(), torch.ones(3, 1).double())
    grads = from_module_layout(
        learner,
        ensemble_grads(
            learner,
            to_module_layout(learner, {k: v.to(dtype) for k, v in params.items()}),
            x,
            x_t,
            target,
            scale,
        ),
    )
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for key, leaf in leaves.items():
        np.testing.assert_allclose(grads[key].double().numpy(), leaf.grad.numpy(), atol=tol, rtol=0)


def test_gather_kept_lists_exactly_the_kept_frames():
    weights = np.array([[0, 1, 1, 0, 1], [1, 0, 0, 0, 0]])
    order, counts = gather_kept(weights)
    assert counts.tolist() == [3, 1]
    assert order[0, :3].tolist() == [1, 2, 4]
    assert order[1, :1].tolist() == [0]


def test_member_module_matches_ensemble_initialisation():
    module = member_module("bc_mlp", 4, 2, 32, seed=5, member=3, dtype=torch.float64)
    params = module_params("bc_mlp", module)
    x = torch.randn(7, 4, dtype=torch.float64)
    np.testing.assert_allclose(
        ensemble_logits("bc_mlp", params, x)[0].numpy(), module(x).detach().numpy(), atol=1e-12
    )
    bound = 1 / np.sqrt(4)
    assert module.fc1.weight.abs().max() <= bound


def test_chunking_does_not_change_members(planted_demos):
    obs, actions, _ = planted_demos.frames()
    masks = generate_masks(4, (planted_demos.num_demos, planted_demos.length), 0.5, 10, seed=1)
    weights = frame_weights(masks, planted_demos.valid)
    whole = fit_ensemble(obs, actions, weights, 2, steps=20, dtype=torch.float64)
    tail = fit_ensemble(obs, actions, weights[2:], 2, steps=20, members=[2, 3], dtype=torch.float64)
    for key in whole.params:
        np.testing.assert_allclose(whole.params[key][2:].numpy(), tail.params[key].numpy(), atol=1e-12)


def test_adam_update_matches_torch_adam():
    torch.manual_seed(0)
    params = [torch.randn(5, dtype=torch.float64, requires_grad=True), torch.randn(2, 3, dtype=torch.float64)]
    params[1].requires_grad_(True)
    mine = [p.detach().clone() for p in params]
    exp_avgs = [torch.zeros_like(p) for p in mine]
    exp_avg_sqs = [torch.zeros_like(p) for p in mine]
    opt = torch.optim.Adam(params, lr=0.01)
    for step in range(1, 6):
        grads = [torch.randn_like(p) for p in mine]
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        adam_update(mine, grads, exp_avgs, exp_avg_sqs, step, 0.01)
    for a, b in zip(mine, params, strict=True):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), atol=1e-15, rtol=0)


def test_full_masks_fit_clean_expert(clean_demos):
    obs, actions, _ = clean_demos.frames()
    ensemble = fit_ensemble(
        obs,
        actions,
        np.ones((3, len(actions))),
        2,
        steps=200,
        normaliser=Normaliser.for_env("CartPole-v1", obs),
    )
    accuracy = (ensemble.logits(obs).argmax(-1).numpy() == actions).mean(axis=1)
    assert np.all(accuracy >= 0.95), accuracy
    returns = Evaluator("CartPole-v1", episodes=4, seed=0).mean_returns(ensemble.act, 3)
    assert np.all(returns >= 475), returns


@pytest.mark.parametrize("env_id", ["MountainCar-v0", "Acrobot-v1"])
def test_policies_have_full_action_space(env_id):
    demos = make_demos(env_id, 2, None, 0.0, 0.0, 10, 0)
    obs, actions, _ = demos.frames()
    assert set(np.unique(actions)) <= {0, 2}
    ensemble = fit_ensemble(
        obs, actions, np.ones((2, len(actions))), 3, steps=20, normaliser=Normaliser.for_env(env_id, obs)
    )
    assert ensemble.logits(obs).shape == (2, len(actions), 3)
    returns = Evaluator(env_id, episodes=1, seed=0, max_steps=50).evaluate(ensemble.act, 2)
    assert returns.shape == (2, 1)


def test_thread_pool_gives_the_same_models(planted_demos):
    """With several torch threads the CPU fit trains model groups in a thread pool: identical parameters."""
    obs, actions, _ = planted_demos.frames()
    masks = generate_masks(6, (planted_demos.num_demos, planted_demos.length), 0.5, 10, seed=4)
    weights = frame_weights(masks, planted_demos.valid)
    single = fit_ensemble(obs, actions, weights, 2, steps=20, chunk=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pooled = fit_ensemble(obs, actions, weights, 2, steps=20, chunk=2)
        assert torch.get_num_threads() == 2  # restored after the pool
    finally:
        torch.set_num_threads(threads)
    for key, value in single.params.items():
        np.testing.assert_array_equal(pooled.params[key].numpy(), value.numpy())
