from __future__ import annotations

import re

import pytest
import torch

import paperlab
from paperlab import runtime


def test_version_is_exposed() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", paperlab.__version__)


def test_cpu_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runtime.select_accelerator() == "cpu"
    assert runtime.select_precision() == "32-true"
    assert runtime.enable_tf32() is False


def test_cuda_preferred_and_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert runtime.select_accelerator() == "cuda"
    assert runtime.select_precision("cuda") == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert runtime.select_precision("cuda") == "32-true"


def test_set_threads_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(2) == 2
        monkeypatch.setenv("PAPERLAB_THREADS", "1")
        assert runtime.set_threads() == 1
        with pytest.raises(ValueError, match="thread count"):
            runtime.set_threads(0)
    finally:
        torch.set_num_threads(before)


def test_seed_everything_is_reproducible() -> None:
    runtime.seed_everything(123)
    first = torch.randn(4)
    runtime.seed_everything(123)
    assert torch.equal(first, torch.randn(4))


def test_environment_report_is_one_line() -> None:
    line = runtime.environment_report()
    assert "\n" not in line
    assert f"torch {torch.__version__}" in line and "accelerator cpu" in line
