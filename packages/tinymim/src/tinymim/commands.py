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
    }
    export_meta["timm"] = timm_snippet(export_meta, "FILE")
    return {"model": {k: v.contiguous() for k, v in state.items()}, "meta": export_meta}


def timm_snippet(meta: dict[str, Any], file: str | Path, num_classes: int | str = "K") -> str:
    """Python that builds the exported student in timm and loads ``file``: every architecture field explicit
    (``num_heads`` included), and the adaptive last block's head count set after creation (timm builds every block
    with ``num_heads``; the weights are the same, only the head split of ``attn.qkv`` differs)."""
    arch, pool = meta["arch"], meta["pool"]
    lines = [
        "import timm",
        f"model = timm.create_model('vit_base_patch16_224', img_size={arch['img_size']}, "
        f"patch_size={arch['patch_size']}, in_chans={arch['in_chans']}, embed_dim={arch['embed_dim']}, "
        f"depth={arch['depth']}, num_heads={arch['num_heads']}, mlp_ratio={arch['mlp_ratio']}, "
        f"global_pool='{pool}', fc_norm={pool == 'avg'}, num_classes={num_classes}, pretrained=True, "
        f"pretrained_cfg_overlay=dict(file={str(file)!r}))",
    ]
    for index, heads in enumerate(meta["block_heads"]):
        if heads != arch["num_heads"]:
            attn = f"model.blocks[{index}].attn"
            lines.append(
                f"{attn}.num_heads = {heads}; {attn}.head_dim = {arch['embed_dim'] // heads}; "
                f"{attn}.scale = {attn}.head_dim ** -0.5"
            )
    return "\n".join(lines)


def export(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Write ``<run folder>/student_timm.pth`` from ``--ckpt`` and print the ``timm.create_model`` call."""
    blob = export_state(args.ckpt, args.pool)
    out = run.save_torch(EXPORT_FILE, blob)
    print(f"exported {len(blob['model'])} tensors to {out}; load it in timm (K = your number of classes):")
    print(timm_snippet(blob["meta"], out))
    return {"export": str(out), "tensors": len(blob["model"]), "pool": args.pool}
