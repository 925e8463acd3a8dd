"""Parameter groups (no-decay rule, layer-wise lr decay) and the warm-up + half-cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable

from torch import nn


def effective_lr(lr: float | None, blr: float, batch_size: int) -> float:
    """``lr`` if given, else ``blr × batch / 256`` (the MAE/TinyMIM linear scaling rule)."""
    return float(lr) if lr is not None else blr * batch_size / 256


def cosine_lr(step: float, total: float, warmup: float, base: float, minimum: float = 0.0) -> float:
    """Linear warm-up from 0 to ``base`` over ``warmup`` steps, then a half-cycle cosine to ``minimum``."""
    if warmup > 0 and step < warmup:
        return base * step / warmup
    if total <= warmup:
        return base
    progress = min(1.0, (step - warmup) / (total - warmup))
    return minimum + (base - minimum) * 0.5 * (1.0 + math.cos(math.pi * progress))


def is_no_decay(name: str, param: nn.Parameter, decay_cls_token: bool = True) -> bool:
    """No weight decay on 1-D parameters and biases; ``cls_token`` is decayed unless ``decay_cls_token=False``.

    (The official code decays the 3-D ``cls_token``; the frozen ``pos_embed`` is never in the optimiser.)
    """
    if name.endswith("cls_token") or name.endswith("mask_token"):
        return not decay_cls_token if name.endswith("cls_token") else True
    return param.ndim <= 1 or name.endswith(".bias")


def layer_id(name: str, depth: int) -> int:
    """MAE layer index: 0 for embeddings/cls/pos, i+1 for ``blocks.i``, depth+1 for everything after."""
    if name.startswith(("cls_token", "pos_embed", "patch_embed", "mask_token")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups(
    named: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    decay_cls_token: bool = True,
    layer_decay: float | None = None,
    depth: int | None = None,
) -> list[dict]:
    """AdamW groups; with ``layer_decay`` every group carries ``lr_scale = layer_decay^(depth+1−layer_id)``."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        no_decay = is_no_decay(name, param, decay_cls_token)
        layer = layer_id(name, depth) if layer_decay is not None and depth is not None else 0
        key = (layer, no_decay)
        if key not in groups:
            scale = (
                layer_decay ** (depth + 1 - layer) if layer_decay is not None and depth is not None else 1.0
            )
            groups[key] = {
                "params": [],
                "names": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": scale,
            }
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return list(groups.values())
