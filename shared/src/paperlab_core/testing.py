"""pytest plugin for every paperlab package (enabled with ``-p paperlab_core.testing``).

* blocks non-loopback network connections (a test that tries to download fails loudly),
* sets ``HF_HUB_OFFLINE=1`` and friends,
* pins torch/OpenMP to one thread per test process (parallel xdist workers otherwise oversubscribe),
* exports ``$PAPERLAB_SHARED_DATA`` (``none`` when ``../shared/data`` is absent),
* sends run directories (``$PAPERLAB_RUNS``) into a temporary folder,
* skips tests marked ``slow`` unless they are selected with ``-m slow``,
* offers fixtures: ``tiny_trainer_kwargs``, ``tiny_trainer``, ``shared_data`` and ``cli_runner``.

Mark a test ``@pytest.mark.allow_network`` to lift the guard for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paperlab_core.offline import install_network_guard, remove_network_guard, set_offline_env

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
set_offline_env()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "allow_network: lift the paperlab network guard for this test")
    os.environ.setdefault("PAPERLAB_THREADS", "1")
    # found once from the rootdir and exported, so subprocesses started from a temporary folder see it too;
    # tests that must run without it set PAPERLAB_SHARED_DATA=none
    from paperlab_core.data import SHARED_DATA_ENV, find_shared_data

    if SHARED_DATA_ENV not in os.environ:
        found = find_shared_data(config.rootpath)
        os.environ[SHARED_DATA_ENV] = str(found) if found else "none"
    try:
        import torch

        torch.set_num_threads(int(os.environ["PAPERLAB_THREADS"]))
    except ImportError:  # pragma: no cover - torch is a paperlab dependency
        pass
    install_network_guard()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``slow`` tests unless the ``-m`` expression names them (``-m slow``, ``make test-slow``)."""
    if "slow" in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason="slow: opt in with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config: pytest.Config) -> None:
    remove_network_guard()


@pytest.fixture(autouse=True)
def _paperlab_network_guard(request: pytest.FixtureRequest) -> Any:
    if request.node.get_closest_marker("allow_network"):
        remove_network_guard()
        yield
        install_network_guard()
    else:
        yield


@pytest.fixture(autouse=True, scope="session")
def _paperlab_runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("paperlab-runs")
    os.environ["PAPERLAB_RUNS"] = str(runs)
    return runs


@pytest.fixture
def tiny_trainer_kwargs(tmp_path: Path) -> dict[str, Any]:
    """Trainer settings for a quick CPU smoke run that writes nothing outside ``tmp_path``."""
    return {
        "accelerator": "cpu",
        "devices": 1,
        "fast_dev_run": True,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
    }


@pytest.fixture
def tiny_trainer(tiny_trainer_kwargs: dict[str, Any]) -> Callable[..., Any]:
    """Factory: ``tiny_trainer(max_steps=5, fast_dev_run=False)`` returns a CPU ``Trainer``."""
    from pytorch_lightning import Trainer

    def make(**overrides: Any) -> Any:
        return Trainer(**{**tiny_trainer_kwargs, **overrides})

    return make


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's ``../shared/data`` folder; the test is skipped when it is absent."""
    from paperlab_core.data import find_shared_data

    path = find_shared_data()
    if path is None:
        pytest.skip("../shared/data not found (set $PAPERLAB_SHARED_DATA)")
    return path


@pytest.fixture
def cli_runner(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``module:function`` in a fresh offline, network-guarded process with cwd ``tmp_path``."""

    def run(
        entry: str, *args: str, timeout: float = 600, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "PAPERLAB_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "paperlab_core.offline", entry, "--", *args],
            cwd=tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{entry} {' '.join(args)} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
                f"\n--- stderr ---\n{proc.stderr[-6000:]}"
            )
        return proc

    return run
