"""``build_model(name, num_outputs, ...)``: the models of spec §2.7 by name."""

from __future__ import annotations

from torch import nn

from dfme.models.flow_nets import OffApexNet, STSTNet
from dfme.models.s3d import S3DLite
from dfme.models.video_resnet import mc3_18, r2plus1d_18, r3d_18

VIDEO_MODELS = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d_lite")
FLOW_MODELS = ("ststnet", "offapexnet")
MODELS = VIDEO_MODELS + FLOW_MODELS
#: what each model eats: ``clip`` (B, 3, T, H, W) or ``flow`` (B, C, 28, 28) with C = 3 (u, v, |ε|) or 2 (u, v)
MODEL_INPUTS = {**{m: "clip" for m in VIDEO_MODELS}, "ststnet": "flow3", "offapexnet": "flow2"}


def build_model(
    name: str,
    num_outputs: int = 7,
    width_mult: float = 1.0,
    dropout: float = 0.5,
    legacy_torchvision_midplanes: bool = False,
    stream_inputs: str = "all",
) -> nn.Module:
    """A model of the registry with ``num_outputs`` logits (7 emotions or one per AU)."""
    if name == "r3d_18":
        return r3d_18(num_outputs, width_mult, dropout)
    if name == "mc3_18":
        return mc3_18(num_outputs, width_mult, dropout)
    if name == "r2plus1d_18":
        return r2plus1d_18(num_outputs, width_mult, dropout, legacy_torchvision_midplanes)
    if name == "s3d_lite":
        return S3DLite(num_outputs, width_mult, dropout)
    if name == "ststnet":
        return STSTNet(num_outputs, stream_inputs)
    if name == "offapexnet":
        return OffApexNet(num_outputs, dropout=dropout)
    raise ValueError(f"unknown model {name!r} (models: {', '.join(MODELS)})")
