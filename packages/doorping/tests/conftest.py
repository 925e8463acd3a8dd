from __future__ import annotations

import numpy as np
import pytest
import torch
from doorping.config import DCConfig, EvalConfig, Settings, TriggerConfig
from doorping.datasets import ImageSet, load_digits_set


@pytest.fixture(scope="session")
def digits() -> ImageSet:
    """The embedded digits split (1,297 / 500)."""
    return load_digits_set()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def toy_settings() -> Settings:
    """The toy preset shrunk to seconds: 2 iterations, loops 3/2, ≤ 20 trigger steps."""
    return Settings(
        method="dc",
        attack="doorping",
        arch="toy",
        ipc=2,
        iterations=2,
        seed=0,
        trigger=TriggerConfig(max_steps=20),
        dc=DCConfig(outer_loop=3, inner_loop=2, init="real", batch_real=64),
        evaluation=EvalConfig(num_eval=1, epochs=20, lr=0.05),
    )


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
