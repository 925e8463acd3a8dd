"""Detectors offline from configs (spec §6.1, §6.9) and the masked loss (spec §6.7)."""

from __future__ import annotations

import os

import pytest
import torch
from sstam.losses import masked_bce
from sstam.models import SpatialDetector, TemporalDetector


def test_masked_loss_sends_gradient_only_to_labelled_heads() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    labels = torch.tensor([[1.0, -1, -1, -1], [-1, 0.0, -1, -1], [-1, -1, -1, 1.0]])
    loss, per_head = masked_bce(logits, labels)
    (grad,) = torch.autograd.grad(loss, logits)
    assert torch.all(grad[labels < 0] == 0)
    assert torch.all(grad[labels >= 0] != 0)
    manual = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[labels >= 0], labels[labels >= 0].clamp_min(0)
    )
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    assert per_head[2].item() == 0.0  # no label for head 2 in this batch


@pytest.mark.parametrize("layout", ["shared", "per_pea"])
def test_spatial_detector_shapes(layout: str) -> None:
    model = SpatialDetector("mobilenetv3_small_050", layout).eval()
    with torch.inference_mode():
        out = model(SpatialDetector.prepare(torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)))
    assert out.shape == (2, 4)


@pytest.mark.parametrize("attention", ["divided_space_time", "space_only", "joint_space_time"])
@pytest.mark.parametrize("variant", ["timesformer_hf", "sstam_ours"])
def test_temporal_detector_accepts_btchw(attention: str, variant: str) -> None:
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    model = TemporalDetector(
        variant,
        image_size=16,
        patch_size=8,
        num_frames=4,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        attention_type=attention,
    ).eval()
    cubes = torch.rand(2, 5, 3, 16, 16)
    pixel_values = model.inputs(cubes, torch.tensor([True, False]))
    assert pixel_values.shape == (2, 4, 6 if variant == "sstam_ours" else 3, 16, 16)  # (B, T, C, H, W)
    assert model.config.num_channels == (6 if variant == "sstam_ours" else 3)
    with torch.inference_mode():
        assert model(cubes).shape == (2, 2)


def test_difference_stream_of_a_clip_start_is_zero() -> None:
    model = TemporalDetector(
        "sstam_ours",
        image_size=16,
        patch_size=8,
        num_frames=2,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    cubes = torch.rand(2, 3, 3, 16, 16)
    values = model.inputs(cubes, torch.tensor([True, False]))
    assert torch.all(values[1, 0, 3:] == 0)
    expected = (cubes[0, 1] - cubes[0, 0]) * model.diff_scale
    torch.testing.assert_close(values[0, 0, 3:], expected)
    torch.testing.assert_close(values[1, 1, 3:], (cubes[1, 2] - cubes[1, 1]) * model.diff_scale)
