from __future__ import annotations

import numpy as np
import pytest
import torch
from r2rise.demos import make_demos
from r2rise.evaluate import Evaluator
from r2rise.learners import (
    Normaliser,
    adam_update,
    ensemble_logits,
    fit_ensemble,
    fit_single,
    member_module,
    module_params,
)
from r2rise.masks import frame_weights, generate_masks


@pytest.mark.parametrize("learner", ["bc_mlp", "bc_linear"])
def test_batched_equals_separate_fits(planted_demos, learner):
    obs, actions, _ = planted_demos.frames()
    masks = generate_masks(5, (planted_demos.num_demos, planted_demos.length), 0.5, 10, seed=9)
    weights = frame_weights(masks, planted_demos.valid)
    norm = Normaliser.for_env("CartPole-v1", obs)
    ensemble = fit_ensemble(
        obs, actions, weights, 2, learner, steps=200, seed=3, normaliser=norm, dtype=torch.float64
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
            np.testing.assert_allclose(ensemble.params[key][m].numpy(), value[0].numpy(), atol=1e-5, rtol=0)


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
    param = torch.randn(5, dtype=torch.float64, requires_grad=True)
    mine = param.detach().clone()
    state = (torch.zeros(5, dtype=torch.float64), torch.zeros(5, dtype=torch.float64))
    opt = torch.optim.Adam([param], lr=0.01)
    for step in range(1, 6):
        grad = torch.randn(5, dtype=torch.float64)
        param.grad = grad.clone()
        opt.step()
        adam_update(mine, grad, *state, step, 0.01)
    np.testing.assert_allclose(mine.numpy(), param.detach().numpy(), atol=1e-15)


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
