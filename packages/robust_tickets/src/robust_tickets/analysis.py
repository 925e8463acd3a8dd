"""Ticket statistics (paper Fig. 3): per-layer and per-head sparsity, R(m), near-binary fractions."""

from __future__ import annotations

import re
from typing import Any

import torch

from robust_tickets.hard_concrete import hard_concrete_gate, init_log_alpha, prob_nonzero
from robust_tickets.losses import draw_global


def keep_vector(net: Any) -> torch.Tensor:
    """The kept-entry indicator: the ticket (binary mode) or the eval gate > 0 (soft/dense modes)."""
    if net.mode == "binary":
        return net.ticket.detach() > 0
    return hard_concrete_gate(net.mask_scores.detach()) > 0


def compare_rankings(a: torch.Tensor, b: torch.Tensor, sparsity: float) -> dict[str, float]:
    """How much two score vectors agree as tickets: Pearson r of the scores and the overlap of the pruned
    sets of their global draws at ``sparsity``, |P_a & P_b| / |P_a| (two independent random draws overlap by
    ``sparsity`` on average, identical rankings by 1)."""
    pa, pb = ~draw_global(a, sparsity), ~draw_global(b, sparsity)
    r = torch.corrcoef(torch.stack([a.detach().flatten().double(), b.detach().flatten().double()]))[0, 1]
    return {
        "pearson_r": float(r),
        "pruned_overlap": float((pa & pb).sum()) / max(int(pa.sum()), 1),
        "chance_overlap": float(sparsity),
    }


def ticket_stats(module: Any, sparsity: float | None = None) -> dict[str, Any]:
    """Ticket statistics; with ``sparsity`` the kept set is the global draw of the mask scores at that
    sparsity (what stage 3 would prune) instead of the checkpoint's own ticket / eval gate."""
    net = module.net
    keep = keep_vector(net) if sparsity is None else draw_global(net.mask_scores.detach(), sparsity)
    scores = net.mask_scores.detach()
    gate = hard_concrete_gate(scores)
    heads = getattr(net.backbone.config, "num_attention_heads", 1)
    per_layer: dict[str, list[int]] = {}
    per_head: dict[str, float] = {}
    for s in net.slots:
        k = keep[s.offset : s.offset + s.numel]
        match = re.search(r"layer\.(\d+)\.", s.name)
        layer = f"layer{match.group(1)}" if match else "pooler"
        agg = per_layer.setdefault(layer, [0, 0])
        agg[0] += int((~k).sum())
        agg[1] += s.numel
        if re.search(r"(query|key|value|q_lin|k_lin|v_lin)$", s.name) and s.out_block == 1:
            rows = k.view(s.rows, s.cols)
            for h, chunk in enumerate(rows.chunk(heads, dim=0)):
                per_head[f"{s.name}.head{h}"] = float(1 - chunk.float().mean())
    return {
        "mode": net.mode,
        "entries": net.num_entries,
        "sparsity": float(int((~keep).sum()) / net.num_entries),
        "per_layer_sparsity": {k: v[0] / v[1] for k, v in per_layer.items()},
        "per_head_sparsity": per_head,
        "l0": float(prob_nonzero(scores).mean()),
        "near_binary": float(((gate < 0.01) | (gate > 0.99)).float().mean()),
        "below_half": float((scores < 0).float().mean()),
        "score_std": float(scores.std()),
        "moved_from_init": float((scores != init_log_alpha(net.mask_p)).float().mean()),
    }
