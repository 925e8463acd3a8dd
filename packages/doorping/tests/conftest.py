from __future__ import annotations

import numpy as np
import pytest
import torch
from doorping.config import DCConfig, EvalConfig, Settings, TriggerConfig
from doorping.datasets import ImageSet, load_digits_set
from doorping.poison import AttackState


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


def _make_run(digits: ImageSet, settings: Settings):
    """Attack state, the initial synthetic set (requires grad) and its SGD, as the DC loop starts them."""
    attack = AttackState(digits, settings.attack, settings.trigger, np.random.default_rng([settings.seed, 1]))
    rng = np.random.default_rng([settings.seed, 2])
    syn = torch.cat([attack.sample(c, settings.ipc, rng) for c in range(10)]).clone().requires_grad_(True)
    optimizer = torch.optim.SGD([syn], lr=settings.dc.lr_img, momentum=settings.dc.momentum)
    return attack, syn, optimizer


@pytest.fixture
def make_run():
    """``make_run(digits, settings) -> (attack, syn, optimizer)``."""
    return _make_run
