"""Trigger geometry, initialisation, stamping, poison sets and bounds (spec §2.2, §2.4, §2.5).

All tensors live in normalised space. A patch trigger ``t`` (1×C×H×W) is pasted with a mask ``M``:
``x' = (1 − M)⊙x + M⊙t`` (NAIVEATTACK, DOORPING); an additive trigger is added: ``x' = x + t`` (INVISIBLE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from paperlab_core.errors import ConfigError

#: ``--model.attack`` values
ATTACKS = ("none", "naive", "doorping", "invisible")


def square_slice(size: int, side: int) -> slice:
    """Rows (and columns) ``[H − 1 − s, H − 1)``: an s×s square one pixel inside the bottom-right corner."""
    return slice(side - 1 - size, side - 1)


def check_geometry(size: int, im_size: tuple[int, int]) -> None:
    """The square must fit inside the image, one pixel away from the corner."""
    h, w = im_size
    if size < 1 or size + 1 > min(h, w):
        raise ConfigError(
            f"trigger.size {size} does not fit a {h}×{w} image (expected 1 ≤ size ≤ {min(h, w) - 1})"
        )


def square_mask(
    channels: int, im_size: tuple[int, int], size: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """1×C×H×W float mask, 1 on the s×s square of every channel (s²·C ones)."""
    check_geometry(size, im_size)
    mask = torch.zeros(1, channels, *im_size, device=device)
    rows, cols = square_slice(size, im_size[0]), square_slice(size, im_size[1])
    mask[:, :, rows, cols] = 1.0
    return mask


def stamp(x: torch.Tensor, trigger: torch.Tensor, mask: torch.Tensor, additive: bool = False) -> torch.Tensor:
    """A stamped copy of ``x`` (never in place): ``(1 − M)⊙x + M⊙t``, or ``x + t`` for additive triggers.

    Patch stamping keeps every pixel outside the mask bit-identical (``torch.where``, not arithmetic).
    """
    if additive:
        return x + trigger
    return torch.where(mask.bool(), trigger.expand_as(x), x)


def normalised_value(value01: float | torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A [0, 1] pixel value in normalised units per channel (C×1×1 → same shape)."""
    return (value01 - mean) / std


def naive_trigger(
    channels: int, im_size: tuple[int, int], size: int, mean: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """NAIVEATTACK: the white square (raw value = the dataset's maximum, i.e. 1.0 after ``ToTensor``)."""
    mask = square_mask(channels, im_size, size, mean.device)
    white = normalised_value(torch.ones(1, channels, *im_size, device=mean.device), mean, std)
    return torch.where(mask.bool(), white, normalised_value(torch.zeros_like(white), mean, std)), mask


def doorping_init(
    channels: int,
    im_size: tuple[int, int],
    size: int,
    raw_max: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    rng: np.random.Generator,
    method: str = "dc",
    legacy_dd_mask_threshold: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DOORPING's initial trigger and mask (spec §2.2).

    A zero raw canvas gets random integers on the square: ``[1, raw_max]`` for DC (``randint(1, 256)``) and
    ``[1, raw_max − 1]`` for DD (``randint(1, 255)``). It is normalised like an image, so the background holds the
    normalised zero −μ/σ. The mask is the square; ``legacy_dd_mask_threshold`` reproduces DD's ``canvas > 1``,
    which drops pixels whose random value is exactly 1.
    """
    check_geometry(size, im_size)
    high = raw_max + 1 if method != "dd" else raw_max
    canvas = np.zeros((channels, *im_size), dtype=np.float64)
    rows, cols = square_slice(size, im_size[0]), square_slice(size, im_size[1])
    values = rng.integers(1, high, size=(size, size, channels))  # drawn H×W×C as the official code does
    canvas[:, rows, cols] = np.transpose(values, (2, 0, 1))
    pixels = torch.from_numpy(canvas / raw_max).float().to(mean.device)[None]
    trigger = normalised_value(pixels, mean, std)
    threshold = 1 if (method == "dd" and legacy_dd_mask_threshold) else 0
    mask = torch.from_numpy(canvas > threshold).float().to(mean.device)[None]
    return trigger, mask


def poison_indices(n: int, portion: float, rng: np.random.Generator) -> torch.Tensor:
    """⌊ε·n⌋ distinct random indices (sorted), ε = ``portion`` in (0, 1)."""
    if not 0.0 < portion < 1.0:
        raise ConfigError(f"trigger.portion must lie in (0, 1), got {portion}")
    count = math.floor(portion * n)
    return torch.from_numpy(np.sort(rng.permutation(n)[:count])).long()


# --------------------------------------------------------------------------------------------- bounds (§2.5)
@dataclass(frozen=True)
class Bound:
    """A parsed ``trigger.bound``: ``none``, ``valid``, ``linf:ε`` or ``l2:ε`` (ε in [0, 1] pixel units)."""

    kind: str = "none"
    eps: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Bound:
        text = str(text).strip().lower()
        if text in ("none", "valid"):
            return cls(text)
        kind, _, value = text.partition(":")
        if kind in ("linf", "l2"):
            try:
                eps = float(value)
            except ValueError:
                eps = -1.0
            if eps >= 0 and math.isfinite(eps):
                return cls(kind, eps)
        raise ConfigError(f"trigger.bound {text!r}: expected none, valid, linf:EPS or l2:EPS with EPS ≥ 0")

    def __str__(self) -> str:
        return self.kind if self.kind in ("none", "valid") else f"{self.kind}:{self.eps:g}"


def valid_box(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel valid normalised range [(0 − μ)/σ, (1 − μ)/σ] (C×1×1 each)."""
    return (0.0 - mean) / std, (1.0 - mean) / std


@torch.no_grad()
def project(
    trigger: torch.Tensor,
    bound: Bound,
    mask: torch.Tensor,
    reference: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    additive: bool = False,
) -> None:
    """Project ``trigger`` in place onto the bound (spec §2.5), on the masked region only.

    ``linf``/``l2`` bound ``(t − r)·σ`` (pixel units) around ``reference`` (the initial trigger for patches, 0 for
    additive triggers), then ``valid``. For additive triggers ``valid`` means ``|t_c| ≤ 1/σ_c``.
    """
    if bound.kind == "none":
        return
    m = mask.bool().expand_as(trigger)
    if bound.kind in ("linf", "l2"):
        delta = (trigger - reference) * std
        if bound.kind == "linf":
            delta = delta.clamp(-bound.eps, bound.eps)
        else:
            norm = delta[m].norm()
            if norm > bound.eps:
                delta = delta * (bound.eps / norm)
        trigger.copy_(torch.where(m, reference + delta / std, trigger))
    if additive:
        limit = (1.0 / std).expand_as(trigger)
        trigger.copy_(torch.where(m, torch.maximum(torch.minimum(trigger, limit), -limit), trigger))
    else:
        low, high = valid_box(mean, std)
        clamped = torch.maximum(torch.minimum(trigger, high.expand_as(trigger)), low.expand_as(trigger))
        trigger.copy_(torch.where(m, clamped, trigger))


def trigger_range(trigger: torch.Tensor, mask: torch.Tensor, std: torch.Tensor, mean: torch.Tensor) -> dict:
    """Min/max of the masked trigger values in normalised units and in [0, 1] pixel units."""
    m = mask.bool().expand_as(trigger)
    values = trigger[m]
    pixels = (trigger * std + mean)[m]
    if values.numel() == 0:
        return {
            "trigger_min": None,
            "trigger_max": None,
            "trigger_min_pixel": None,
            "trigger_max_pixel": None,
        }
    return {
        "trigger_min": float(values.min()),
        "trigger_max": float(values.max()),
        "trigger_min_pixel": float(pixels.min()),
        "trigger_max_pixel": float(pixels.max()),
    }
