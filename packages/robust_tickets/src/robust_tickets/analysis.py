"""Ticket statistics (paper Fig. 3): per-layer and per-head sparsity, R(m), near-binary fractions."""

from __future__ import annotations

import re
from typing import Any

import torch

from robust_tickets.hard_concrete import hard_concrete_gate, prob_nonzero


def keep_vector(net: Any) -> torch.Tensor:
    """The kept-entry indicator: the ticket (binary mode) or the eval gate > 0 (soft/dense modes)."""
    if net.mode == "binary":
        return net.ticket.detach() > 0
    return hard_concrete_gate(net.mask_scores.detach()) > 0


def ticket_stats(module: Any) -> dict[str, Any]:
    net = module.net
    keep = keep_vector(net)
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
    }
