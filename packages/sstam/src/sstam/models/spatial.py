"""Spatial PEA detectors (spec §2.5): a timm backbone (``pretrained=False``, offline) on P×P RGB patches.

Layouts: ``shared`` (one backbone, 4 sigmoid logits) or ``per_pea`` (one binary classifier per PEA). Inputs are
RGB in [0, 1]; the ImageNet mean/std normalisation is a buffer of the module, so it follows the device.
``inputs`` (ours): ``rgb`` (the plain patch), ``rgb+cues`` (RGB plus the hand-crafted artifact cue maps of
:mod:`sstam.models.cues` as extra channels; the default) or ``cues`` (the cue maps only).
"""

from __future__ import annotations

import torch
from torch import nn

from sstam.models.cues import NUM_CUES, artifact_cues
from sstam.synth import SPATIAL_PEAS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUTS = ("shared", "per_pea")
INPUTS = ("rgb", "rgb+cues", "cues")


class SpatialDetector(nn.Module):
    """``p^k = sigmoid(logit_k)`` for k ∈ (blurring, blocking, bleeding, ringing)."""

    def __init__(
        self,
        backbone: str = "mobilenetv3_small_050",
        layout: str = "shared",
        heads: tuple[str, ...] = SPATIAL_PEAS,
        inputs: str = "rgb+cues",
    ) -> None:
        super().__init__()
        import timm

        if layout not in LAYOUTS:
            raise ValueError(f"spatial layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if inputs not in INPUTS:
            raise ValueError(f"spatial inputs must be one of {', '.join(INPUTS)}, got {inputs!r}")
        self.heads = tuple(heads)
        self.layout = layout
        self.inputs = inputs
        chans = {"rgb": 3, "rgb+cues": 3 + NUM_CUES, "cues": NUM_CUES}[inputs]
        if layout == "shared":
            self.net = timm.create_model(
                backbone, pretrained=False, num_classes=len(self.heads), in_chans=chans
            )
        else:
            self.nets = nn.ModuleList(
                timm.create_model(backbone, pretrained=False, num_classes=1, in_chans=chans)
                for _ in self.heads
            )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` RGB in [0, 1], ``[B, 3, P, P]`` → logits ``[B, K]``."""
        parts = []
        if self.inputs != "rgb":
            with torch.no_grad():
                parts.append(artifact_cues(x.float()).to(x.dtype))
        if self.inputs != "cues":
            parts.insert(0, (x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if self.layout == "shared":
            return self.net(x)
        return torch.cat([net(x) for net in self.nets], dim=1)

    @staticmethod
    def prepare(patches: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, P, P, 3]`` → float ``[B, 3, P, P]`` in [0, 1] (on the patches' device)."""
        return patches.permute(0, 3, 1, 2).float().div_(255.0)
