from __future__ import annotations

import numpy as np
import pytest
from r2rise.demos import Demonstrations, make_demos


@pytest.fixture(scope="session")
def clean_demos() -> Demonstrations:
    """5 clean CartPole expert demonstrations × 200 frames (ε_exec = 0.1)."""
    return make_demos("CartPole-v1", 5, 200, 0.1, 0.0, 10, 0)


@pytest.fixture(scope="session")
def planted_demos() -> Demonstrations:
    """The planted configuration of spec §2.10 (45 % of blocks label-flipped)."""
    return make_demos("CartPole-v1", 5, 200, 0.1, 0.45, 10, 0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
