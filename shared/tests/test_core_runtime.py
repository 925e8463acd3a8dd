from __future__ import annotations

import re

import pytest
import torch

import paperlab_core
from paperlab_core import runtime
from paperlab_core.errors import ConfigError


def test_version_comes_from_the_metadata() -> None:
    from importlib.metadata import version

    assert re.fullmatch(r"\d+\.\d+\.\d+", paperlab_core.__version__)
    assert paperlab_core.__version__ == version("paperlab-core")


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def bf16_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)


def test_cpu_machine(no_gpu: None) -> None:
    assert runtime.resolve_accelerator("auto") == "cpu"
    assert runtime.select_precision("cpu") == "32-true"
    assert runtime.configure_tf32("cpu") is False
    with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
        runtime.resolve_accelerator("cuda")
    with pytest.raises(ConfigError, match="neither CUDA nor MPS"):
        runtime.resolve_accelerator("gpu")
    with pytest.raises(ConfigError, match="unknown accelerator 'tpu2'"):
        runtime.resolve_accelerator("tpu2")


def test_precision_follows_the_resolved_accelerator(bf16_gpu: None) -> None:
    """An explicit CPU run on a bf16-capable GPU machine stays float32; auto picks the GPU and bf16."""
    assert runtime.resolve_accelerator("auto") == "cuda"
    assert runtime.select_precision(runtime.resolve_accelerator("auto")) == "bf16-mixed"
    assert runtime.resolve_accelerator("cpu") == "cpu"
    assert runtime.select_precision(runtime.resolve_accelerator("cpu")) == "32-true"
    assert runtime.resolve_accelerator("cuda:1") == "cuda"


def test_no_bf16_on_older_gpus(bf16_gpu: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert runtime.select_precision("cuda") == "32-true"


def test_lightning_accelerator_names() -> None:
    assert runtime.lightning_accelerator(None) == "auto"
    assert runtime.lightning_accelerator("GPU") == "gpu"
    assert runtime.lightning_accelerator("tpu") is None
    assert runtime.lightning_accelerator(object()) is None


def test_set_threads_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(2) == 2
        monkeypatch.setenv("PAPERLAB_THREADS", "1")
        assert runtime.set_threads() == 1
        assert runtime.set_threads(3, import_torch=False) == 3
        assert __import__("os").environ["OMP_NUM_THREADS"] == "3"
        with pytest.raises(ConfigError, match="thread count"):
            runtime.set_threads(0)
        monkeypatch.setenv("PAPERLAB_THREADS", "many")
        with pytest.raises(ConfigError, match="positive integer, got 'many'"):
            runtime.set_threads()
    finally:
        torch.set_num_threads(before)


def test_seed_everything_is_reproducible() -> None:
    import random

    import numpy as np

    runtime.seed_everything(123)
    first = (torch.randn(4), np.random.rand(3), random.random())  # noqa: NPY002
    runtime.seed_everything(123)
    second = (torch.randn(4), np.random.rand(3), random.random())  # noqa: NPY002
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


def test_environment_line(no_gpu: None) -> None:
    info = runtime.environment(packages={"demo": "1.2.3"})
    line = runtime.environment_line(info)
    assert "\n" not in line and line.startswith("env: demo 1.2.3 | paperlab-core ")
    assert f"torch {torch.__version__}" in line and "accelerator cpu" in line and "precision 32-true" in line
    numpy_only = runtime.environment(uses_torch=False)
    assert numpy_only["precision"] == "numpy" and numpy_only["accelerator"] == "cpu"
