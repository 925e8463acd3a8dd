"""The distillation objectives as pure functions (spec §2.6, §2.8).

* DC gradient matching ``D(g_syn, g_real)`` (Zhao et al. 2021, Eq. 10 of the DC paper, ``dis_metric='ours'``):
  for each parameter tensor, rows = output units, ``Σ_rows (1 − cos(g_real,row, g_syn,row))`` with
  ``cos = ⟨a, b⟩ / (‖a‖‖b‖ + 1e-6)``; 1-D tensors (biases, norm parameters) contribute 0.
* DM distribution matching (Zhao & Bilen 2023): ``Σ_c ‖mean_i φ(x_real,c,i) − mean_j φ(s_c,j)‖²``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: ``--model.dc.dis_metric`` values
DIS_METRICS = ("ours", "mse", "cos")


def layer_distance(g_real: torch.Tensor, g_syn: torch.Tensor) -> torch.Tensor:
    """``Σ_rows 1 − cos`` for one parameter's gradients, reshaped to (out, −1); 0 for 1-D tensors."""
    if g_real.dim() == 1:
        return g_real.new_zeros(())
    a = g_real.reshape(g_real.shape[0], -1)
    b = g_syn.reshape(g_syn.shape[0], -1)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)
    return (1 - cos).sum()


def match_loss(
    g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor], metric: str = "ours"
) -> torch.Tensor:
    """Gradient-matching distance between the synthetic and the real gradients of one class."""
    if metric == "ours":
        return torch.stack([layer_distance(r, s) for r, s in zip(g_real, g_syn, strict=True)]).sum()
    real = torch.cat([g.reshape(-1) for g in g_real])
    syn = torch.cat([g.reshape(-1) for g in g_syn])
    if metric == "mse":
        return ((syn - real) ** 2).sum()
    if metric == "cos":
        return 1 - (real * syn).sum() / (real.norm() * syn.norm() + 1e-6)
    raise ValueError(f"unknown distance {metric!r} (expected one of {', '.join(DIS_METRICS)})")


def distribution_matching_loss(embed_real: torch.Tensor, embed_syn: torch.Tensor) -> torch.Tensor:
    """``‖mean(φ(real)) − mean(φ(syn))‖²`` for one class (spec §2.8)."""
    return ((embed_real.mean(0) - embed_syn.mean(0)) ** 2).sum()
