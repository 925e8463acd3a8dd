"""``tinymim export``: a distilled student as a timm-loadable checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from paperlab_core.errors import ConfigError
from paperlab_core.verbs import Run
from tinymim.module import load_student_state

EXPORT_FILE = "student_timm.pth"


def export_state(path: str | Path, pool: str = "avg") -> dict[str, Any]:
    """A timm-loadable ``{"model": state, "meta": ...}`` from a distilled student (``norm.*`` dropped for avg)."""
    if pool not in {"avg", "token"}:
        raise ConfigError(f"--pool must be avg or token, got {pool!r}")
    state, config, meta = load_student_state(path)
    if pool == "avg":
        state = {k: v for k, v in state.items() if not k.startswith("norm.")}
    export_meta = {
        "arch": config.to_dict(),
        "block_heads": meta.get("block_heads", config.block_heads()),
        "img_size": config.img_size,
        "patch_size": config.patch_size,
        "pool": pool,
        "source": str(path),
        "timm": "timm.create_model('vit_*', img_size=..., patch_size=..., global_pool='avg', fc_norm=True, "
        "num_classes=K, pretrained=True, pretrained_cfg_overlay=dict(file=FILE))",
    }
    return {"model": {k: v.contiguous() for k, v in state.items()}, "meta": export_meta}


def export(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Write ``<run folder>/student_timm.pth`` from ``--ckpt`` and print the ``timm.create_model`` call."""
    blob = export_state(args.ckpt, args.pool)
    out = run.save_torch(EXPORT_FILE, blob)
    arch = blob["meta"]["arch"]
    print(
        f"exported {len(blob['model'])} tensors to {out}; load with timm.create_model('vit_...', "
        f"img_size={arch['img_size']}, patch_size={arch['patch_size']}, embed_dim={arch['embed_dim']}, "
        f"depth={arch['depth']}, global_pool='{args.pool}', fc_norm={args.pool == 'avg'}, num_classes=K, "
        f"pretrained=True, pretrained_cfg_overlay=dict(file='{out}'))"
    )
    return {"export": str(out), "tensors": len(blob["model"]), "pool": args.pool}
