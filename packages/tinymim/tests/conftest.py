"""Shared fixtures for the tinymim tests (small ViTs so everything runs in seconds on one thread)."""

from __future__ import annotations

import pytest
import torch
from tinymim.models import ViTConfig, build_vit
from tinymim.teacher import Teacher


@pytest.fixture
def student_config() -> ViTConfig:
    return ViTConfig(img_size=16, patch_size=4, embed_dim=16, depth=3, num_heads=2, last_heads=4)


@pytest.fixture
def teacher_vit() -> torch.nn.Module:
    torch.manual_seed(1)
    return build_vit(ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=4, num_heads=4))


@pytest.fixture
def teacher(teacher_vit) -> Teacher:
    return Teacher(teacher_vit, target_block=3, source="test", weight_hash="x")


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
