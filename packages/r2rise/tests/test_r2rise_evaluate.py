from __future__ import annotations

import numpy as np
import pytest
import torch
from r2rise.envs import EXPERTS, check_env_id, run_expert_episode
from r2rise.evaluate import Evaluator
from r2rise.learners import fit_ensemble


def test_cartpole_expert_scores_500_on_ten_seeds():
    assert [run_expert_episode("CartPole-v1", EXPERTS["CartPole-v1"], s) for s in range(10)] == [500.0] * 10


def test_mountaincar_and_acrobot_experts():
    car = [run_expert_episode("MountainCar-v0", EXPERTS["MountainCar-v0"], s) for s in range(10)]
    assert min(car) > -200 and np.mean(car) >= -130
    acro = [run_expert_episode("Acrobot-v1", EXPERTS["Acrobot-v1"], s) for s in range(10)]
    assert np.mean(acro) >= -100


def test_unknown_env_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown env 'NoSuchEnv-v0'"):
        check_env_id("NoSuchEnv-v0")
    with pytest.raises(ValueError, match="unknown env"):
        Evaluator("NoSuchEnv-v0")


@pytest.fixture(scope="module")
def small_ensemble(request):
    from r2rise.demos import make_demos
    from r2rise.learners import Normaliser
    from r2rise.masks import frame_weights, generate_masks

    demos = make_demos("CartPole-v1", 5, 200, 0.1, 0.45, 10, 0)
    obs, actions, _ = demos.frames()
    weights = frame_weights(generate_masks(6, (5, 200), 0.5, 10, seed=0), demos.valid)
    return fit_ensemble(
        obs,
        actions,
        weights,
        2,
        steps=60,
        normaliser=Normaliser.for_env("CartPole-v1", obs),
        dtype=torch.float64,
    )


@pytest.mark.parametrize("epsilon", [0.0, 0.2])
def test_vector_evaluator_equals_plain_loop(small_ensemble, epsilon):
    evaluator = Evaluator("CartPole-v1", episodes=3, epsilon=epsilon, seed=4)
    batched = evaluator.evaluate(small_ensemble.act, small_ensemble.size)
    assert len(np.unique(batched)) > 1
    for m in range(small_ensemble.size):
        single = small_ensemble.select(m)
        for r in range(3):
            assert evaluator.evaluate(single.act, 1, episodes=[r])[0, 0] == batched[m, r]


def test_common_random_numbers_shared_across_models(small_ensemble):
    same = small_ensemble.select([2, 2, 2])
    returns = Evaluator("CartPole-v1", episodes=3, epsilon=0.3, seed=1).evaluate(same.act, 3)
    assert np.all(returns == returns[:1])


def test_sync_vector_env_matches_loop():
    expert = EXPERTS["MountainCar-v0"]

    def policy(obs: np.ndarray) -> np.ndarray:
        return np.array([[expert(o) for o in row] for row in obs])

    evaluator = Evaluator("MountainCar-v0", episodes=2, epsilon=0.1, seed=0)
    batched = evaluator.evaluate(policy, 2)
    assert np.all(batched == batched[:1])
    assert evaluator.evaluate(policy, 1, episodes=[1])[0, 0] == batched[0, 1]


@pytest.mark.parametrize("bound", [1, 2, 4, 7])
def test_bounded_env_count_gives_the_same_returns(small_ensemble, bound, monkeypatch):
    """At most ``max_envs`` envs exist at once (slices of models, and of episodes when one model's episodes exceed
    the bound); every slice keeps each episode's initial state and ε draws, so the returns equal one vector env's.
    Both policy kinds are sliced: an ensemble (``select``) and a plain callable (padded observations)."""
    import gymnasium as gym

    whole = Evaluator("CartPole-v1", episodes=3, epsilon=0.2, seed=4).evaluate(small_ensemble, 6)
    sizes = []
    make_vec = gym.make_vec

    def counting(*args, **kwargs):
        sizes.append(kwargs["num_envs"])
        return make_vec(*args, **kwargs)

    monkeypatch.setattr(gym, "make_vec", counting)
    bounded = Evaluator("CartPole-v1", episodes=3, epsilon=0.2, seed=4, max_envs=bound)
    np.testing.assert_array_equal(bounded.evaluate(small_ensemble, 6), whole)
    np.testing.assert_array_equal(bounded.evaluate(small_ensemble.act, 6), whole)
    assert max(sizes) <= bound and sum(sizes) == 2 * 6 * 3


def test_default_env_bounds():
    from r2rise.evaluate import SYNC_MAX_ENVS

    assert Evaluator("CartPole-v1").max_envs is None
    assert Evaluator("MountainCar-v0").max_envs == SYNC_MAX_ENVS
    with pytest.raises(ValueError, match="env bound"):
        Evaluator("CartPole-v1", max_envs=0)
