"""Temporal PEA detectors (spec §2.7): a TimeSformer from ``transformers`` built from a config (random init, no
hub access) with two binary heads on the CLS token (flickering, floating).

* ``timesformer_hf`` — the baseline: RGB frames, ``num_channels = 3``.
* ``sstam_ours`` — **our** variant, not the paper's (the paper's "improvement" is unknown): a frame-difference
  stream ``[RGB_t, RGB_t − RGB_{t−1}]`` through the public ``num_channels = 6`` field, on small cubes with a
  small patch. HF's divided attention order is kept (temporal, then spatial). With ``cues`` (ours, default
  since 0.2) four hand-crafted per-frame channels are added (:func:`sstam.models.cues.temporal_cues`: luma-mean,
  fine-energy and blockiness deviations from the window mean, global-motion-compensated residual).

HF's layers reshape with ``config.num_frames`` and ``config.image_size // config.patch_size`` (not with the
input's shape), so cubes must have exactly ``num_frames`` frames of ``image_size``² pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from sstam.models.cues import NUM_TEMPORAL_CUES, temporal_cues
from sstam.models.spatial import IMAGENET_MEAN, IMAGENET_STD
from sstam.synth import TEMPORAL_PEAS

VARIANTS = ("timesformer_hf", "sstam_ours")
ATTENTION_TYPES = ("divided_space_time", "space_only", "joint_space_time")


class TemporalDetector(nn.Module):
    """Logits ``[B, 2]`` for (flickering, floating) from cubes ``[B, L+1, 3, P, P]`` (frame 0 = predecessor)."""

    def __init__(
        self,
        variant: str = "sstam_ours",
        image_size: int = 64,
        patch_size: int = 8,
        num_frames: int = 8,
        hidden_size: int = 64,
        num_hidden_layers: int = 4,
        num_attention_heads: int = 4,
        intermediate_size: int = 256,
        attention_type: str = "divided_space_time",
        diff_scale: float = 4.0,
        cues: bool = False,
    ) -> None:
        super().__init__()
        from transformers import TimesformerConfig, TimesformerModel

        if variant not in VARIANTS:
            raise ValueError(f"temporal variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(
                f"attention_type must be one of {', '.join(ATTENTION_TYPES)}, got {attention_type!r}"
            )
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
        self.variant = variant
        self.heads = TEMPORAL_PEAS
        self.diff_scale = float(diff_scale)
        self.cues = bool(cues) and variant == "sstam_ours"
        self.config = TimesformerConfig(
            image_size=int(image_size),
            patch_size=int(patch_size),
            num_channels=(6 + NUM_TEMPORAL_CUES * self.cues) if variant == "sstam_ours" else 3,
            num_frames=int(num_frames),
            hidden_size=int(hidden_size),
            num_hidden_layers=int(num_hidden_layers),
            num_attention_heads=int(num_attention_heads),
            intermediate_size=int(intermediate_size),
            attention_type=attention_type,
        )
        self.backbone = TimesformerModel(self.config)
        self.head = nn.Linear(int(hidden_size), len(self.heads))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    @property
    def num_frames(self) -> int:
        return int(self.config.num_frames)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    def inputs(self, cubes: torch.Tensor, has_prev: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, L+1, 3, P, P]`` in [0, 1] → ``pixel_values [B, L, C, P, P]`` (C = 6 for ours, 3 for HF)."""
        frames = cubes[:, 1:]
        rgb = (frames - self.mean.to(frames.dtype)) / self.std.to(frames.dtype)
        if self.variant != "sstam_ours":
            return rgb
        diff = cubes[:, 1:] - cubes[:, :-1]
        if has_prev is not None:  # a window at the start of the clip: the first difference is 0
            keep = has_prev.to(device=diff.device, dtype=diff.dtype).view(-1, 1, 1, 1, 1)
            diff = torch.cat([diff[:, :1] * keep, diff[:, 1:]], dim=1)
        parts = [rgb, diff * self.diff_scale]
        if self.cues:
            with torch.no_grad():
                parts.append(temporal_cues(cubes.float(), has_prev).to(rgb.dtype))
        return torch.cat(parts, dim=2)

    def forward(self, cubes: torch.Tensor, has_prev: torch.Tensor | None = None) -> torch.Tensor:
        pixel_values = self.inputs(cubes, has_prev)
        hidden = self.backbone(pixel_values=pixel_values).last_hidden_state
        cls = hidden[:, 0]
        if cls.shape[0] != cubes.shape[0]:  # space_only: HF returns one CLS per frame, [B·T, D]
            cls = cls.view(cubes.shape[0], -1, cls.shape[-1]).mean(dim=1)
        return self.head(cls)

    @staticmethod
    def prepare(cubes: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, L+1, P, P, 3]`` → float ``[B, L+1, 3, P, P]`` in [0, 1]."""
        return cubes.permute(0, 1, 4, 2, 3).float().div_(255.0)


#: which temporal models ``sstam train`` optimises (``--model.temporal_train``); the others stay frozen
TEMPORAL_TRAIN = ("both", "flickering", "floating")


class SplitTemporalDetector(nn.Module):
    """**Ours (0.6):** flickering and floating from two separate temporal models, each with its own TimeSformer
    backbone and heads (``temporal.split: true`` in a bundle). Logits ``[B, 2]``: column 0 (flickering) from
    :attr:`flickering`, column 1 (floating) from :attr:`floating`; each model's other head is unused. The
    state-dict keys are ``flickering.*`` and ``floating.*`` (``temporal.flickering.*`` in a bundle). A frozen
    model (:meth:`freeze`) has no gradients and stays in eval mode through ``train()``."""

    def __init__(self, **config) -> None:
        super().__init__()
        self.flickering = TemporalDetector(**config)
        self.floating = TemporalDetector(**config)
        self.heads = TEMPORAL_PEAS
        self.frozen: tuple[str, ...] = ()

    @property
    def variant(self) -> str:
        return self.flickering.variant

    @property
    def config(self):
        return self.flickering.config

    @property
    def num_frames(self) -> int:
        return self.flickering.num_frames

    @property
    def image_size(self) -> int:
        return self.flickering.image_size

    def load_unsplit(self, state: dict[str, torch.Tensor]) -> None:
        """Both models from one (unsplit) :class:`TemporalDetector` state dict: the start of a split fine-tune."""
        self.flickering.load_state_dict(state)
        self.floating.load_state_dict(state)

    def freeze(self, names: tuple[str, ...] | list[str]) -> None:
        """Freeze the named models (``flickering`` / ``floating``): no gradients, eval mode kept."""
        for name in names:
            if name not in TEMPORAL_PEAS:
                raise ValueError(f"a split temporal model is one of {', '.join(TEMPORAL_PEAS)}, got {name!r}")
            getattr(self, name).requires_grad_(False).eval()
        self.frozen = tuple(names)

    def train(self, mode: bool = True) -> SplitTemporalDetector:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def forward(self, cubes: torch.Tensor, has_prev: torch.Tensor | None = None) -> torch.Tensor:
        flickering = self.flickering(cubes, has_prev)[:, :1]
        floating = self.floating(cubes, has_prev)[:, 1:]
        return torch.cat([flickering, floating], dim=1)


def build_temporal(config: dict) -> TemporalDetector | SplitTemporalDetector:
    """A temporal detector from a ``TemporalConfig`` dict: ``split`` (default False) picks the two-model kind."""
    config = dict(config)
    split = bool(config.pop("split", False))
    return SplitTemporalDetector(**config) if split else TemporalDetector(**config)
