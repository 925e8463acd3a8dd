"""Shared fixtures of the gec_rl tests."""

from __future__ import annotations

import numpy as np
import pytest
from gec_rl.envs import TabularMDP


@pytest.fixture
def random_mdp() -> TabularMDP:
    """A random 4-state, 2-action MDP with transition rewards in [0, 1] and a random μ."""
    rng = np.random.default_rng(123)
    S, A = 4, 2
    P = rng.dirichlet(np.ones(S), size=(S, A))
    r = rng.random((S, A, S))
    mu = rng.dirichlet(np.ones(S))
    return TabularMDP(name="random", P=P, r=r, mu=mu, horizon=5)
