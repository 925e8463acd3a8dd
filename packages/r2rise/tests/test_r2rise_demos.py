from __future__ import annotations

import numpy as np
import pytest
from r2rise.demos import DemoFormatError, Demonstrations, load_demos, plant_corruption, save_demos
from r2rise.envs import cartpole_expert


def test_recorded_labels_are_expert_actions(clean_demos):
    assert clean_demos.obs.shape == (5, 200, 4)
    assert clean_demos.valid.all()
    labels = np.array([[cartpole_expert(o) for o in demo] for demo in clean_demos.obs])
    np.testing.assert_array_equal(labels, clean_demos.actions)


def test_plant_flips_exactly_the_corrupted_blocks(clean_demos):
    planted = plant_corruption(clean_demos, 0.45, block=10, seed=3, num_actions=2)
    assert planted.corrupted.shape == (5, 20)
    flipped = np.repeat(planted.corrupted, 10, axis=1)
    np.testing.assert_array_equal(planted.actions[flipped], 1 - clean_demos.actions[flipped])
    np.testing.assert_array_equal(planted.actions[~flipped], clean_demos.actions[~flipped])


def test_plant_many_actions_picks_another_action():
    actions = np.zeros((2, 20), dtype=np.int64)
    demos = Demonstrations(np.zeros((2, 20, 6)), actions, np.ones((2, 20), bool), np.zeros(2), "Acrobot-v1")
    planted = plant_corruption(demos, 1.0, block=10, seed=0, num_actions=3)
    assert np.all(planted.actions != 0) and set(np.unique(planted.actions)) == {1, 2}


def _cartpole_fixture(rng):
    return Demonstrations(
        obs=rng.normal(size=(2, 30, 4)).astype(np.float32),
        actions=rng.integers(0, 2, size=(2, 30)),
        valid=np.ones((2, 30), bool),
        returns=np.array([30.0, 30.0]),
        env_id="CartPole-v1",
        meta={"block": 10},
        corrupted=np.zeros((2, 3), bool),
    )


def test_npz_round_trip(tmp_path, rng):
    demos = _cartpole_fixture(rng)
    path = save_demos(demos, tmp_path / "demos.npz")
    loaded = load_demos(path, env_id="CartPole-v1")
    for name in ("obs", "actions", "valid", "returns", "corrupted"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(demos, name))
    assert loaded.env_id == "CartPole-v1" and loaded.meta == {"block": 10}


def test_atari_shaped_fixture_round_trip(tmp_path, rng):
    demos = Demonstrations(
        obs=rng.integers(0, 256, size=(2, 20, 4, 84, 84), dtype=np.uint8),
        actions=rng.integers(0, 4, size=(2, 20)),
        valid=np.ones((2, 20), bool),
        returns=np.zeros(2),
        env_id="BreakoutNoFrameskip-v4",
    )
    path = save_demos(demos, tmp_path / "atari.npz")
    loaded = load_demos(path, check_env=False)
    assert loaded.obs.dtype == np.uint8
    np.testing.assert_array_equal(loaded.obs, demos.obs)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("actions", lambda d: d.actions.astype(np.float32), "field 'actions' must be an integer array"),
        ("actions", lambda d: d.actions + 5, "field 'actions' out of range"),
        ("obs", lambda d: d.obs[:, :, :3], "field 'obs' has per-frame shape"),
        ("obs", lambda d: d.obs[:, :10], "field 'obs' must have shape"),
        ("valid", lambda d: d.valid.astype(np.int8), "field 'valid' must be bool"),
        ("obs", lambda d: d.obs.astype(np.int32), "field 'obs' must be uint8 or floating"),
    ],
)
def test_bad_files_name_the_field(tmp_path, rng, field, value, message):
    demos = _cartpole_fixture(rng)
    setattr(demos, field, value(demos))
    arrays = {
        "obs": demos.obs,
        "actions": demos.actions,
        "valid": demos.valid,
        "returns": demos.returns,
        "env_id": np.asarray(demos.env_id),
    }
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DemoFormatError, match=message) as info:
        load_demos(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_wrong_env_and_missing_field(tmp_path, rng):
    path = save_demos(_cartpole_fixture(rng), tmp_path / "d.npz")
    with pytest.raises(DemoFormatError, match="field 'env_id' is 'CartPole-v1' but 'Acrobot-v1'"):
        load_demos(path, env_id="Acrobot-v1")
    np.savez(tmp_path / "m.npz", obs=np.zeros((1, 2, 4)))
    with pytest.raises(DemoFormatError, match="field 'actions' is missing"):
        load_demos(tmp_path / "m.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_demos(tmp_path / "none.npz")


def test_demonstrator_hook():
    from r2rise.demos import make_demos
    from r2rise.envs import load_demonstrator

    hooked = make_demos("CartPole-v1", 2, 30, 0.1, 0.0, 10, 5, demonstrator="r2rise.envs:cartpole_expert")
    default = make_demos("CartPole-v1", 2, 30, 0.1, 0.0, 10, 5)
    np.testing.assert_array_equal(hooked.actions, default.actions)
    with pytest.raises(ValueError, match="expected 'module:callable'"):
        load_demonstrator("not_a_spec")
    with pytest.raises(ValueError, match="no hand-written expert"):
        make_demos("Pendulum-v1", 1, 10)


def test_variable_length_episodes_are_padded():
    from r2rise.demos import make_demos

    demos = make_demos("MountainCar-v0", 3, None, 0.0, 0.0, 10, 0)
    lengths = demos.valid.sum(axis=1)
    assert demos.length == lengths.max() and np.all(lengths > 50)
    for d, n in enumerate(lengths):
        assert demos.valid[d, :n].all() and not demos.valid[d, n:].any()
