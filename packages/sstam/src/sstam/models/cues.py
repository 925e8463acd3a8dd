"""Hand-crafted artifact cue maps fed to the spatial backbone as extra input channels (**ours**, not the paper's).

The detectors trained on RGB patches of a dozen stills memorised the content (lab notebook, 2026-12-06). These
channels make the artifacts explicit and content-normalised, so a small backbone can learn them from few steps:

* ``hf_fine`` / ``hf_mid``: log local energy of the luma residuals ``Y − G₁Y`` and ``G₁Y − G₂.₅Y`` (blur lowers
  the fine band relative to the mid band);
* ``block_h`` / ``block_v``: phase-folded 8-px boundary discontinuity, ``log(max_φ f(φ) / mean_φ f(φ))`` with
  ``f(φ)`` the mean absolute luma step across columns (rows) ``x ≡ φ (mod 8)`` — invariant to where the 8×8 grid
  falls in the patch; broadcast as constant maps;
* ``block_map``: the luma step across the detected grid phase minus the steps beside it (where blocks meet);
* ``chroma_fine`` / ``luma_grad``: log local gradient energy of chroma (Cb, Cr) and of luma — bleeding smears and
  shifts chroma edges away from luma edges;
* ``chroma_luma_corr``: local correlation of the chroma and luma gradient magnitudes (high when colour edges sit
  on luma edges);
* ``ringing``: fine-band energy relative to the strongest luma edge within 7 px (oscillation beside edges);
* ``chroma_block_h`` / ``chroma_block_v``: the phase-folded step ratio of the chroma planes (|ΔCb| + |ΔCr|):
  chroma sub-sampled by f and replicated leaves steps on every f-th column only (f = 2, 4, 8 all divide 8).

All operations are convolutions/pooling on the input's device and dtype; nothing is learned here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CUE_NAMES = (
    "hf_fine",
    "hf_mid",
    "block_h",
    "block_v",
    "block_map",
    "chroma_fine",
    "luma_grad",
    "chroma_luma_corr",
    "ringing",
    "chroma_block_h",
    "chroma_block_v",
)
NUM_CUES = len(CUE_NAMES)
_EPS = 1e-6


def binomial(x: torch.Tensor) -> torch.Tensor:
    """Separable [1, 2, 1]/4 smoothing of ``[B, C, H, W]`` (replicate border), by slicing — cheap on CPU."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    h = p[..., :, :-2] + 2 * p[..., :, 1:-1] + p[..., :, 2:]
    return (h[..., :-2, :] + 2 * h[..., 1:-1, :] + h[..., 2:, :]) / 16.0


def cell_mean(x: torch.Tensor, cell: int) -> torch.Tensor:
    """Mean over non-overlapping ``cell``² cells, repeated back to full size (a piecewise-constant local mean)."""
    small = F.avg_pool2d(x, cell, ceil_mode=True)
    return F.interpolate(small, size=x.shape[-2:], mode="nearest")


def _grad_mag(x: torch.Tensor) -> torch.Tensor:
    gx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return torch.sqrt(gx * gx + gy * gy + _EPS)


def _blockiness(
    y: torch.Tensor, dim: int, step: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log(max_φ f / mean_φ f)`` per sample and the per-position step excess at the winning phase."""
    if step is None:
        step = (y.narrow(dim, 1, y.shape[dim] - 1) - y.narrow(dim, 0, y.shape[dim] - 1)).abs()
    profile = step.mean(dim=2 if dim == 3 else 3).squeeze(1)  # [B, W-1]
    n = (profile.shape[1] // 8) * 8
    folded = profile[:, :n].reshape(profile.shape[0], n // 8, 8).mean(1)  # [B, 8]
    ratio = torch.log((folded.max(1).values + 1e-4) / (folded.mean(1) + 1e-4))
    phase = folded.argmax(1)  # boundary between positions phase and phase + 1
    positions = torch.arange(profile.shape[1], device=y.device)
    on_grid = ((positions[None, :] - phase[:, None]) % 8 == 0).to(y.dtype)  # [B, W-1]
    neighbours = 0.5 * (
        torch.roll(step, shifts=1, dims=dim) + torch.roll(step, shifts=-1, dims=dim)
    )  # steps beside each boundary
    excess = (step - neighbours).clamp_min(0)
    if dim == 3:
        excess = F.pad(excess * on_grid.view(-1, 1, 1, on_grid.shape[1]), (0, 1, 0, 0))
    else:
        excess = F.pad(excess * on_grid.view(-1, 1, on_grid.shape[1], 1), (0, 0, 0, 1))
    return ratio, excess


def artifact_cues(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] ``[B, 3, P, P]`` (P ≥ 16) → cue maps ``[B, NUM_CUES, P, P]`` (roughly
    zero-mean, unit-scale). Local energies are means over 4×4 (correlation: 8×8) cells."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = b - y, r - y
    g1 = binomial(y)
    g2 = binomial(binomial(binomial(g1)))
    fine = y - g1
    mid = g1 - g2
    hf_fine = torch.log(cell_mean(fine * fine, 4) + 1e-6)
    hf_mid = torch.log(cell_mean(mid * mid, 4) + 1e-6)
    block_h, excess_h = _blockiness(y, 3)
    block_v, excess_v = _blockiness(y, 2)
    block_map = torch.log(cell_mean(excess_h + excess_v, 4) + 1e-3)
    grad_y = _grad_mag(y)
    grad_c = torch.sqrt(_grad_mag(cb) ** 2 + _grad_mag(cr) ** 2)
    chroma_fine = torch.log(cell_mean(grad_c * grad_c, 4) + 1e-6)
    luma_grad = torch.log(cell_mean(grad_y * grad_y, 4) + 1e-6)
    gy0 = grad_y - cell_mean(grad_y, 8)
    gc0 = grad_c - cell_mean(grad_c, 8)
    corr = cell_mean(gy0 * gc0, 8) / torch.sqrt(cell_mean(gy0 * gy0, 8) * cell_mean(gc0 * gc0, 8) + 1e-8)
    edge = F.max_pool2d(F.max_pool2d(grad_y, 4, ceil_mode=True), 3, stride=1, padding=1)
    edge = F.interpolate(edge, size=x.shape[-2:], mode="nearest")
    ringing = torch.log(cell_mean(fine.abs(), 4) + 1e-4) - torch.log(edge + 1e-3)

    def chroma_step(dim: int) -> torch.Tensor:
        n = x.shape[dim] - 1
        return (cb.narrow(dim, 1, n) - cb.narrow(dim, 0, n)).abs() + (
            cr.narrow(dim, 1, n) - cr.narrow(dim, 0, n)
        ).abs()

    chroma_h, _ = _blockiness(cb, 3, chroma_step(3))
    chroma_v, _ = _blockiness(cb, 2, chroma_step(2))
    size = x.shape[-2:]
    maps = [
        (hf_fine + 8.0) / 3.0,
        (hf_mid + 8.0) / 3.0,
        (4.0 * block_h).view(-1, 1, 1, 1).expand(-1, 1, *size),
        (4.0 * block_v).view(-1, 1, 1, 1).expand(-1, 1, *size),
        (block_map + 5.0) / 2.0,
        (chroma_fine + 8.0) / 3.0,
        (luma_grad + 7.0) / 3.0,
        corr,
        (ringing + 2.0) / 2.0,
        chroma_h.view(-1, 1, 1, 1).expand(-1, 1, *size),
        chroma_v.view(-1, 1, 1, 1).expand(-1, 1, *size),
    ]
    return torch.cat(maps, dim=1)


# --------------------------------------------------------------------------------------------- temporal (ours)
TEMPORAL_CUE_NAMES = ("luma_mean_dev", "hf_energy_dev", "blockiness_dev", "mc_residual")
NUM_TEMPORAL_CUES = len(TEMPORAL_CUE_NAMES)


def _shift_residual(cur: torch.Tensor, prev: torch.Tensor, radius: int = 3) -> torch.Tensor:
    """``|Y_t − Y_{t−1}(· + s*)|`` with ``s*`` the integer global shift (|s| ≤ radius) of least mean residual:
    what does not follow the camera (a floating region, an object frozen on screen) stays. ``[N, 1, P, P]``."""
    r = radius
    centre = cur[..., r:-r, r:-r]
    height, width = centre.shape[-2:]
    best_cost = torch.full(cur.shape[:1], float("inf"), device=cur.device, dtype=cur.dtype)
    best = torch.zeros_like(centre)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            moved = prev[..., r + dy : r + dy + height, r + dx : r + dx + width]
            residual = (centre - moved).abs()
            cost = residual.mean(dim=(1, 2, 3))
            better = cost < best_cost
            best_cost = torch.where(better, cost, best_cost)
            best = torch.where(better.view(-1, 1, 1, 1), residual, best)
    return F.pad(best, (r, r, r, r))


def temporal_cues(cubes: torch.Tensor, has_prev: torch.Tensor | None = None) -> torch.Tensor:
    """Cubes ``[B, L+1, 3, P, P]`` in [0, 1] (frame 0 = predecessor) → per-frame cue maps ``[B, L, 4, P, P]``
    (ours): absolute deviation of each frame's mean luma, log fine-band energy and 8×8 blockiness from the window's
    mean (flicker: gain or quality oscillating along time; a constant-quality window has none), and the
    global-motion-compensated residual (floating)."""
    b, t1, _, p, _ = cubes.shape
    flat = cubes.flatten(0, 1)
    y = 0.299 * flat[:, 0:1] + 0.587 * flat[:, 1:2] + 0.114 * flat[:, 2:3]  # [B·(L+1), 1, P, P]
    fine = y - binomial(y)
    energy = torch.log((fine * fine).mean(dim=(1, 2, 3)) + 1e-6).view(b, t1)
    block = (_blockiness(y, 3)[0] + _blockiness(y, 2)[0]).view(b, t1)
    mean = y.mean(dim=(1, 2, 3)).view(b, t1)

    def dev(v: torch.Tensor) -> torch.Tensor:  # |deviation|: an oscillation of either phase reads the same
        w = v[:, 1:]
        return (w - w.mean(dim=1, keepdim=True)).abs()

    yy = y.view(b, t1, 1, p, p)
    residual = _shift_residual(yy[:, 1:].flatten(0, 1), yy[:, :-1].flatten(0, 1)).view(b, t1 - 1, 1, p, p)
    if has_prev is not None:  # no predecessor: the first residual is 0
        keep = has_prev.to(device=cubes.device, dtype=cubes.dtype).view(-1, 1, 1, 1, 1)
        residual = torch.cat([residual[:, :1] * keep, residual[:, 1:]], dim=1)
    scalars = torch.stack([50.0 * dev(mean), 2.0 * dev(energy), 4.0 * dev(block)], dim=2)  # [B, L, 3]
    maps = scalars[..., None, None].expand(-1, -1, -1, p, p)
    return torch.cat([maps, 8.0 * residual], dim=2)
