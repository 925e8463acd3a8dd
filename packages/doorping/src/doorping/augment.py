"""Differentiable Siamese augmentation (DSA; Zhao & Bilen, ICML 2021), the official ``ParamDiffAug`` set.

Six transformations of a normalised N×C×H×W batch, each differentiable in the images (spec §2.6 "DSA", §2.8):

* ``color`` = brightness ``x + (b − ½)·s_b``, saturation ``(x − x̄_c)·f + x̄_c`` and contrast ``(x − x̄)·f + x̄``
  with ``f ∈ [1 − s, 1 + s]`` (official: ``rand·2`` and ``rand + 0.5``, i.e. s = 1 and s = 0.5);
* ``crop``: a translation by up to ``round(s·H)`` pixels into a one-pixel zero border (official ``rand_crop``);
* ``cutout``: a zeroed ``round(s·H)×round(s·W)`` window at a random centre;
* ``flip``: horizontal flip with probability s;
* ``scale``: per-axis factors in ``[1/r, r]``, r = 1 + s, by ``affine_grid``/``grid_sample`` (align_corners);
* ``rotate``: an angle in ``[−s, s]`` degrees, the same way.

**Siamese.** With ``siamese=True`` (gradient matching, distribution matching) every draw has size 1 and is shared
by the whole batch, and each transformation re-seeds a generator from ``(seed, its position)``: two batches of any
sizes augmented with the same seed get *the same* transformation — real and synthetic images of one class in one
inner step are compared under one augmentation. With ``siamese=False`` (training on the synthetic set) every image
draws its own parameters. Mode ``S`` (official default) applies one transformation group per call, chosen from the
strategy by the seeded generator; mode ``M`` applies them all in order.

Generators live on the images' device, so the draws never leave it. Every strength at 0 is the identity (up to the
bilinear resampling of ``grid_sample`` at the pixel centres, ≈ 1e-7 relative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from paperlab_core.errors import ConfigError

#: the official strategy string (DC/DSA and DM)
OFFICIAL_STRATEGY = "color_crop_cutout_flip_scale_rotate"
GROUPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass(frozen=True)
class DSAParams:
    """Strengths of the DSA transformations (0 = identity); the defaults are the official ``ParamDiffAug``."""

    strategy: str = OFFICIAL_STRATEGY
    mode: str = "S"
    scale: float = 0.2
    rotate: float = 15.0
    crop: float = 0.125
    cutout: float = 0.5
    flip: float = 0.5
    brightness: float = 1.0
    saturation: float = 1.0
    contrast: float = 0.5

    def groups(self) -> list[str]:
        """The strategy's transformation groups, validated (one-line error naming the bad entry)."""
        names = [g for g in str(self.strategy).split("_") if g]
        bad = [g for g in names if g not in GROUPS]
        if bad or not names:
            raise ConfigError(
                f"dc.dsa_strategy {self.strategy!r}: expected groups joined by '_' from {', '.join(GROUPS)}"
            )
        if self.mode not in ("S", "M"):
            raise ConfigError(f"dc.dsa_mode {self.mode!r}: expected S (one group per call) or M (all)")
        return names


def _generator(x: torch.Tensor, seed: int) -> torch.Generator:
    return torch.Generator(device=x.device).manual_seed(int(seed) & 0x7FFFFFFFFFFF)


def _uniform(g: torch.Generator, n: int, x: torch.Tensor) -> torch.Tensor:
    """``n`` U[0, 1) draws on the images' device."""
    return torch.rand(n, generator=g, device=x.device, dtype=x.dtype)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def scale(x: torch.Tensor, g: torch.Generator, draws: int, p: DSAParams) -> torch.Tensor:
    ratio = 1.0 + p.scale
    sx = _uniform(g, draws, x) * (ratio - 1.0 / ratio) + 1.0 / ratio
    sy = _uniform(g, draws, x) * (ratio - 1.0 / ratio) + 1.0 / ratio
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], -1), torch.stack([zero, sy, zero], -1)], 1)
    return _affine(x, theta)


def rotate(x: torch.Tensor, g: torch.Generator, draws: int, p: DSAParams) -> torch.Tensor:
    angle = (_uniform(g, draws, x) - 0.5) * 2.0 * p.rotate / 180.0 * math.pi
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
    return _affine(x, theta)


def flip(x: torch.Tensor, g: torch.Generator, draws: int, p: DSAParams) -> torch.Tensor:
    pick = (_uniform(g, draws, x) < p.flip).view(-1, 1, 1, 1)
    return torch.where(pick, x.flip(3), x)


def color(x: torch.Tensor, g: torch.Generator, draws: int, p: DSAParams) -> torch.Tensor:
    shift = (_uniform(g, draws, x) - 0.5).view(-1, 1, 1, 1) * p.brightness
    x = x + shift
    sat = 1.0 + (2.0 * _uniform(g, draws, x) - 1.0).view(-1, 1, 1, 1) * p.saturation
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * sat + mean_c
    con = 1.0 + (2.0 * _uniform(g, draws, x) - 1.0).view(-1, 1, 1, 1) * p.contrast
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * con + mean


def _randint(g: torch.Generator, low: int, high: int, draws: int, x: torch.Tensor) -> torch.Tensor:
    return torch.randint(low, high, (draws,), generator=g, device=x.device)


def crop(x: torch.Tensor, g: torch.Generator, draws: int, p: DSAParams) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * p.crop + 0.5), int(w * p.crop + 0.5)
    tx = _randint(g, -sh, sh + 1, draws, x).expand(n).view(n, 1, 1)
    ty = _randint(g, -sw, sw + 1, draws, x).expand(n).view(n, 1, 1)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    gx = (rows + tx + 1).clamp(0, h + 1)
    gy = (cols + ty + 1).clamp(0, w + 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[batch, gx, gy].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, g: torch.Generator, draws: int, p: DSAParams) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * p.cutout + 0.5), int(w * p.cutout + 0.5)
    ox = _randint(g, 0, h + (1 - ch % 2), draws, x).expand(n).view(n, 1, 1)
    oy = _randint(g, 0, w + (1 - cw % 2), draws, x).expand(n).view(n, 1, 1)
    gx = (torch.arange(ch, device=x.device).view(1, ch, 1) + ox - ch // 2).clamp(0, h - 1)
    gy = (torch.arange(cw, device=x.device).view(1, 1, cw) + oy - cw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device).view(n, 1, 1).expand(n, ch, cw), gx.expand(n, ch, cw),
         gy.expand(n, ch, cw)] = 0.0  # fmt: skip
    return x * mask.unsqueeze(1)


TRANSFORMS = {"color": color, "crop": crop, "cutout": cutout, "flip": flip, "scale": scale, "rotate": rotate}


def augment(x: torch.Tensor, seed: int, params: DSAParams, siamese: bool = True) -> torch.Tensor:
    """DSA of the batch ``x`` (module docstring): a new tensor, differentiable in ``x``.

    ``siamese=True``: one transformation shared by the batch, fixed by ``seed`` — the same ``seed`` on a real and a
    synthetic batch applies identical parameters to both. ``siamese=False``: per-image parameters.
    """
    groups = params.groups()
    if params.mode == "S":
        pick = int(torch.randint(len(groups), (1,), generator=_generator(x, seed), device=x.device))
        groups = [groups[pick]]
    draws = 1 if siamese else len(x)
    for position, name in enumerate(groups, start=1):
        g = _generator(x, seed * 8 + position)  # one fresh stream per transformation, batch-size independent
        x = TRANSFORMS[name](x, g, draws, params)
    return x


def augment_each(x: torch.Tensor, params: DSAParams | None, generator: torch.Generator) -> torch.Tensor:
    """Per-image DSA of a training batch, seeded from ``generator`` (the official ``aug=True``); ``x`` itself when
    ``params`` is None."""
    if params is None:
        return x
    return augment(x, int(torch.randint(2**31 - 1, (1,), generator=generator)), params, siamese=False)


def augment_pair(
    real: torch.Tensor, syn: torch.Tensor, seed: int, params: DSAParams | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Siamese transformation (fixed by ``seed``) of a real and a synthetic batch; both unchanged when
    ``params`` is None."""
    if params is None:
        return real, syn
    return augment(real, seed, params), augment(syn, seed, params)
