"""Configuration dataclasses (the ``model.*`` fields of the presets; spec §2.12, all proposed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sstam.saliency import SaliencyConfig


@dataclass
class SpatialConfig:
    """Spatial detectors: timm backbone (``pretrained=False``) and layout (``shared`` | ``per_pea``)."""

    backbone: str = "mobilenetv3_small_050"
    layout: str = "shared"
    inputs: str = "rgb+cues"  # rgb | rgb+cues | cues (ours: hand-crafted artifact cue channels)


@dataclass
class TemporalConfig:
    """Temporal detector: ``variant`` is ``timesformer_hf`` (baseline) or ``sstam_ours`` (ours, not the paper's);
    the rest are ``transformers.TimesformerConfig`` fields (``num_channels`` follows the variant). ``split``
    (ours, 0.6; default off) gives flickering and floating separate models of this shape."""

    variant: str = "sstam_ours"
    image_size: int = 64
    patch_size: int = 8
    num_frames: int = 8
    hidden_size: int = 64
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 256
    attention_type: str = "divided_space_time"
    diff_scale: float = 4.0
    cues: bool = True  # ours: hand-crafted per-frame cue channels (sstam_ours only)
    # ours (0.6): two temporal models of this shape, one for flickering and one for floating (own backbones)
    split: bool = False


@dataclass
class PipelineConfig:
    """Inference: patch grid, selection, pooling, saliency, batch size (spec §2.3–2.7)."""

    patch: int = 64
    frame_stride: int = 1
    spatial_selection: str = "all"  # all | top_k
    spatial_top_k: int = 64
    temporal_selection: str = "all"  # all | top_k
    temporal_top_k: int = 64
    pooling_mode: str = "soft"  # soft | threshold
    agg: str = "mean"  # mean | max | p90
    batch_size: int = 256
    saliency: SaliencyConfig = field(default_factory=SaliencyConfig)


@dataclass
class FusionConfig:
    """Fusion regressor (spec §2.8): ``svr`` (default) or ``nnls``; ``features``: all | spatial | temporal."""

    kind: str = "svr"
    features: str = "all"
    inner_folds: int = 4


def to_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj) if not isinstance(obj, dict) else dict(obj)


def pipeline_from_dict(data: dict[str, Any]) -> PipelineConfig:
    data = dict(data)
    saliency = SaliencyConfig(**dict(data.pop("saliency", {}) or {}))
    return PipelineConfig(**data, saliency=saliency)
