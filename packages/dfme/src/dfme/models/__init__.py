"""Models of the benchmark (plain PyTorch, no torchvision import): the registry ``build_model``."""

from __future__ import annotations

from dfme.models.flow_nets import OffApexNet, STSTNet
from dfme.models.registry import FLOW_MODELS, MODEL_INPUTS, MODELS, VIDEO_MODELS, build_model
from dfme.models.s3d import S3DLite
from dfme.models.video_resnet import VideoResNet, mc3_18, r2plus1d_18, r3d_18

__all__ = [
    "FLOW_MODELS",
    "MODELS",
    "MODEL_INPUTS",
    "VIDEO_MODELS",
    "OffApexNet",
    "S3DLite",
    "STSTNet",
    "VideoResNet",
    "build_model",
    "mc3_18",
    "r2plus1d_18",
    "r3d_18",
]
