"""The GPU smoke entry point exists and fails clearly without CUDA."""

from __future__ import annotations

import pytest
import torch


def test_gpu_smoke_entry_point():
    from ccgc.smoke import gpu_smoke

    if torch.cuda.is_available():  # pragma: no cover - only on a GPU machine
        assert gpu_smoke().startswith("ccgc gpu-smoke")
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            gpu_smoke()
