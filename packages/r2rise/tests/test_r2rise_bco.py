"""``bco_mlp``: behavioural cloning from observation, BCO(0), as a batched ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from r2rise import bco
from r2rise.demos import make_demos
from r2rise.iq import transitions
from r2rise.learners import Normaliser
from r2rise.masks import frame_weights, generate_masks


@pytest.fixture(scope="module")
def idm():
    """A smaller IDM than the default (2,000 exploration steps, 200 Adam steps) keeps the tests fast."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bco, "EXPLORE_STEPS", 2000)
        patch.setattr(bco, "IDM_STEPS", 200)
        return bco.fit_idm("CartPole-v1", 2, seed=0)


def test_exploration_is_seeded_and_random():
    states, actions, nexts = bco.explore("CartPole-v1", 300, seed=1)
    again = bco.explore("CartPole-v1", 300, seed=1)
    assert states.shape == nexts.shape == (300, 4) and actions.shape == (300,)
    np.testing.assert_array_equal(states, again[0])
    assert 0.4 < actions.mean() < 0.6  # uniformly random actions


def test_inverse_dynamics_model_recovers_the_actions(idm):
    """On fresh random transitions and on the expert's own (noise-free) demonstrations the IDM names the action
    taken (CartPole's push changes ẋ by ±0.195 per step, so the action is identifiable)."""
    states, actions, nexts = bco.explore("CartPole-v1", 1000, seed=99)
    assert (idm.act(bco.idm_inputs(states, nexts)[None])[0] == actions).mean() >= 0.95
    demos = make_demos("CartPole-v1", 2, 100, 0.0, 0.0, 10, 3)
    obs, labels, _ = demos.frames()
    successor, has_next = transitions(demos.valid)
    inferred = idm.act(bco.idm_inputs(obs, demos.obs.reshape(-1, 4)[successor])[None])[0]
    assert (inferred[has_next] == labels[has_next]).mean() >= 0.95


def test_bco_never_reads_the_labels(idm):
    """Planted (label-flipped) and clean demonstrations of the same seed share their observations; BCO fits
    identical policies on both, for every mask."""
    clean = make_demos("CartPole-v1", 5, 200, 0.1, 0.0, 10, 0)
    planted = make_demos("CartPole-v1", 5, 200, 0.1, 0.45, 10, 0)
    assert (clean.actions != planted.actions).any()
    weights = frame_weights(generate_masks(3, (5, 200), 0.5, 10, seed=0), clean.valid)
    fits = []
    for demos in (clean, planted):
        obs, _, _ = demos.frames()
        successor, has_next = transitions(demos.valid)
        fits.append(
            bco.fit_bco_ensemble(
                obs,
                demos.obs.reshape(-1, 4)[successor],
                has_next,
                weights,
                idm,
                2,
                steps=20,
                normaliser=Normaliser.for_env("CartPole-v1", obs),
            )
        )
    for key, value in fits[0].params.items():
        torch.testing.assert_close(fits[1].params[key], value, rtol=0, atol=0)
