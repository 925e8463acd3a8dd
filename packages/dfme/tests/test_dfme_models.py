"""Models (spec §2.7, §6.6): shapes, parameter counts, the R(2+1)D mid-channel formula."""

from __future__ import annotations

import pytest
import torch
from dfme.models import OffApexNet, STSTNet, build_model
from dfme.models.video_resnet import midplanes, r2plus1d_18, r3d_18

SPEC_COUNTS = {  # spec §2.7 table: (400 classes, 7 classes)
    "r3d_18": (33_371_472, 33_169_863),
    "mc3_18": (11_695_440, 11_493_831),
    "r2plus1d_18": (33_370_839, 33_169_230),
}


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", ["r3d_18", "mc3_18", "r2plus1d_18", "s3d_lite"])
def test_video_models_forward(name):
    model = build_model(name, 7, width_mult=0.125).eval()
    with torch.inference_mode():
        assert model(torch.randn(2, 3, 8, 32, 32)).shape == (2, 7)
        assert build_model(name, 11, width_mult=0.125).eval()(torch.randn(1, 3, 8, 32, 32)).shape == (1, 11)


def test_flow_models_forward():
    assert STSTNet()(torch.randn(2, 3, 28, 28)).shape == (2, 7)
    assert STSTNet(stream_inputs="one_each")(torch.randn(2, 3, 28, 28)).shape == (2, 7)
    assert OffApexNet()(torch.randn(2, 2, 28, 28)).shape == (2, 7)
    assert STSTNet().num_features == 400


@pytest.mark.parametrize("name", list(SPEC_COUNTS))
def test_parameter_counts_equal_the_spec(name):
    for classes, expected in zip((400, 7), SPEC_COUNTS[name], strict=True):
        assert count(build_model(name, classes, 1.0)) == expected
    legacy = build_model("r2plus1d_18", 400, 1.0, legacy_torchvision_midplanes=True)
    assert count(legacy) == 31_505_325


def test_r2plus1d_blocks_match_r3d_blocks_within_one_percent():
    a, b = r3d_18(7), r2plus1d_18(7)
    for layer in ("layer1", "layer2", "layer3", "layer4"):
        for block in range(2):
            for conv in ("conv1", "conv2"):
                r3d = count(getattr(getattr(a, layer)[block], conv)[0])
                r21 = count(getattr(getattr(b, layer)[block], conv)[0])
                assert abs(r21 - r3d) / r3d < 0.01, (layer, block, conv)
    assert midplanes(64, 64) == 144 and midplanes(64, 128) == 230  # ⌊3·9·Nᵢ₋₁Nᵢ / (9Nᵢ₋₁ + 3Nᵢ)⌋


def test_counts_equal_torchvision_builders_when_importable():
    video = pytest.importorskip("torchvision.models.video")
    for ours, theirs in (("r3d_18", video.r3d_18), ("mc3_18", video.mc3_18)):
        assert count(build_model(ours, 400, 1.0)) == count(theirs())
    legacy = build_model("r2plus1d_18", 400, 1.0, legacy_torchvision_midplanes=True)
    assert count(legacy) == count(video.r2plus1d_18())
