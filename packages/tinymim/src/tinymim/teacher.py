"""The frozen MIM teacher: sources (builtin / mae: / timm: / tinymim:), target block and truncated forward."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from paperlab_core.data import OfflineError, cache_root, download
from paperlab_core.errors import ConfigError, MissingFileError, UserError
from paperlab_core.logging import log
from tinymim.models import (
    ARCHS,
    QKV,
    ViTConfig,
    attention_features,
    block_heads,
    block_qkv,
    build_vit,
    default_target_block,
    embed_tokens,
    interpolate_pos_embed,
    run_blocks,
    set_block_heads,
)

MAE_LICENCE = "MAE weights (facebookresearch/mae) are licensed CC BY-NC 4.0: non-commercial use only"
DECODER_PREFIXES = ("decoder_", "mask_token")
FEATURE_SITES = ("block", "final", "ffn", "attn", "attn_residual", "qkv")


class CheckpointKeyError(UserError, KeyError):
    """A checkpoint lacks parameters the architecture needs, or has extra ones (named in the message)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class TeacherConfig:
    """Where the teacher comes from and how its relation targets are read.

    Args:
        source: ``builtin`` / ``builtin:PRESET`` (in-package MAE teacher, pre-trained on first use),
            ``mae:PATH_OR_URL`` (official MAE ``.pth``), ``timm:NAME`` or ``timm:NAME@FILE`` (timm MAE weights),
            ``tinymim:PATH`` (a checkpoint written by this package, e.g. a distilled student), or ``random``
            (random weights: benchmarks and smoke tests only).
        arch: architecture for ``mae:`` and ``random`` sources (a key of ``tinymim.models.ARCHS``).
        target_block: 1-based teacher block k whose input gives the targets; None: ``ceil(0.75·L_t)`` if the
            teacher is deeper than the student, else its last block.
        relation_heads: ``native`` (the head count the block was trained with) or an integer re-view.
        sha256: optional checksum of a downloaded ``mae:`` URL.
    """

    source: str = "builtin"
    arch: str | None = None
    target_block: int | None = None
    relation_heads: int | str = "native"
    sha256: str | None = None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _torch_load(path: Path) -> Any:
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            log(
                f"tinymim: {path} holds non-tensor objects; loading it with weights_only=False (trust the file)"
            )
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(f"{path} cannot be read as a checkpoint ({type(err).__name__}: {err})") from None


def arch_config(name: str, img_size: int | None = None) -> ViTConfig:
    if name not in ARCHS:
        raise ConfigError(f"unknown teacher arch {name!r}; expected one of {sorted(ARCHS)}")
    fields = dict(ARCHS[name])
    fields.pop("last_heads", None) if name.startswith("mae_") else None
    if img_size is not None:
        fields["img_size"] = img_size
    return ViTConfig(**fields)


def encoder_state_from_checkpoint(state: dict[str, Any], path: Any) -> dict[str, torch.Tensor]:
    """The encoder part of an MAE-style state dict (``model`` key or top level); decoder keys dropped."""
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    dropped = [k for k in state if k.startswith(DECODER_PREFIXES)]
    if dropped:
        log(
            f"tinymim: dropping {len(dropped)} MAE decoder entries from {path} ({', '.join(sorted(dropped)[:3])}, ...)"
        )
    return {k: v for k, v in state.items() if not k.startswith(DECODER_PREFIXES) and not k.startswith("head")}


def load_encoder_weights(model: VisionTransformer, state: dict[str, torch.Tensor], origin: Any) -> None:
    """Strictly load encoder weights, with errors naming the offending parameter."""
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(("head", "fc_norm"))}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing:
        raise CheckpointKeyError(f"{origin}: checkpoint lacks encoder parameter(s) {', '.join(missing[:5])}")
    if unexpected:
        raise CheckpointKeyError(
            f"{origin}: unexpected parameter(s) {', '.join(unexpected[:5])} for this architecture"
        )
    state = dict(state)
    if state["pos_embed"].shape != own["pos_embed"].shape:
        grid = int(round((own["pos_embed"].shape[1] - 1) ** 0.5))
        state["pos_embed"] = interpolate_pos_embed(state["pos_embed"], grid)
    for key, value in own.items():
        if state[key].shape != value.shape:
            raise ConfigError(
                f"{origin}: parameter {key} has shape {tuple(state[key].shape)} but the architecture expects "
                f"{tuple(value.shape)} (width/depth mismatch: check teacher.arch)"
            )
    model.load_state_dict(state, strict=False)


def save_tinymim_checkpoint(
    path: str | Path, model: VisionTransformer, config: ViTConfig, extra_meta: dict[str, Any] | None = None
) -> Path:
    """Write ``{"model": encoder state, "meta": {arch, block_heads, ...}}`` atomically."""
    from paperlab_core.logging import save_torch_atomic

    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("head")}
    meta = {
        "format": "tinymim",
        "arch": config.to_dict(),
        "block_heads": block_heads(model),
        **(extra_meta or {}),
    }
    return save_torch_atomic({"model": state, "meta": meta}, path)


def load_tinymim_checkpoint(
    path: str | Path, img_size: int | None = None
) -> tuple[VisionTransformer, ViTConfig, dict]:
    """A model written by :func:`save_tinymim_checkpoint`, with the recorded per-block head counts restored."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("tinymim checkpoint", path, "a .pth written by tinymim train/pretrain-teacher")
    blob = _torch_load(path)
    if not isinstance(blob, dict) or "meta" not in blob or "arch" not in blob.get("meta", {}):
        raise UserError(f"{path}: not a tinymim checkpoint (expected keys 'model' and 'meta' with 'arch')")
    meta = blob["meta"]
    arch = dict(meta["arch"])
    if img_size is not None:
        arch["img_size"] = img_size
    config = ViTConfig(**arch)
    model = build_vit(config)
    heads = meta.get("block_heads")
    if heads is None or len(heads) != config.depth:
        raise ConfigError(
            f"{path}: meta.block_heads must list the head count of each of the {config.depth} blocks"
        )
    for blk, count in zip(model.blocks, heads, strict=True):
        set_block_heads(blk, int(count))
    load_encoder_weights(model, encoder_state_from_checkpoint(blob, path), path)
    return model, config, meta


def fetch_mae_file(location: str, sha256: str | None = None) -> Path:
    """A local path for ``mae:PATH_OR_URL``: ``file://`` and paths are used as is, http(s) is downloaded."""
    if location.startswith("file://"):
        location = location[len("file://") :]
    if location.startswith(("http://", "https://")):
        dest = cache_root() / "tinymim" / "mae" / Path(location).name
        return download(location, dest, sha256=sha256)
    path = Path(location).expanduser()
    if not path.is_file():
        raise MissingFileError(
            "MAE checkpoint",
            path,
            "download e.g. https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_large.pth and pass "
            "--model.teacher.source mae:PATH",
        )
    return path


class Teacher(nn.Module):
    """A frozen ViT that only runs blocks 1..k−1 and ``norm1``+``qkv`` of block k (spec §2.6)."""

    def __init__(
        self,
        vit: VisionTransformer,
        target_block: int,
        relation_heads: int | str = "native",
        source: str = "",
        weight_hash: str = "",
    ) -> None:
        super().__init__()
        depth = len(vit.blocks)
        if not 1 <= target_block <= depth:
            raise ConfigError(
                f"teacher.target_block={target_block} is outside 1..{depth} (the teacher has {depth} blocks)"
            )
        self.vit = vit
        self.target_block = int(target_block)
        native = int(vit.blocks[target_block - 1].attn.num_heads)
        self.relation_heads = native if relation_heads == "native" else int(relation_heads)
        width = vit.blocks[target_block - 1].attn.qkv.out_features // 3
        if width % self.relation_heads != 0:
            raise ConfigError(
                f"teacher.relation_heads={self.relation_heads} cannot view teacher block {target_block} of width "
                f"{width}: {width}/{self.relation_heads} is not an integer"
            )
        self.source = source
        self.weight_hash = weight_hash
        self.vit.requires_grad_(False)
        self.eval()

    @property
    def depth(self) -> int:
        return len(self.vit.blocks)

    @property
    def embed_dim(self) -> int:
        return int(self.vit.embed_dim)

    def train(self, mode: bool = True) -> Teacher:
        """The teacher always stays in eval mode (Lightning calls ``.train()`` on every child each epoch)."""
        return super().train(False)

    def qkv(self, images: torch.Tensor) -> QKV:
        """q, k, v of block k from ``LN(F_{k-1})``, computed under ``inference_mode`` and cloned out of it."""
        with torch.inference_mode():
            x = embed_tokens(self.vit, images)
            x = run_blocks(self.vit, x, 0, self.target_block - 1)
            qkv = block_qkv(self.vit.blocks[self.target_block - 1], x, self.relation_heads)
        return QKV(qkv.q.clone(), qkv.k.clone(), qkv.v.clone(), qkv.scale)

    def features(self, images: torch.Tensor, site: str) -> Any:
        """Teacher feature at ``site`` (block k, or the final normed output for ``final``), cloned."""
        if site not in FEATURE_SITES:
            raise ConfigError(f"feature site {site!r} not in {FEATURE_SITES}")
        with torch.inference_mode():
            x = embed_tokens(self.vit, images)
            if site == "final":
                out: Any = self.vit.norm(run_blocks(self.vit, x, 0, self.depth))
            else:
                x = run_blocks(self.vit, x, 0, self.target_block - 1)
                block = self.vit.blocks[self.target_block - 1]
                if site == "qkv":
                    qkv = block_qkv(block, x, self.relation_heads)
                    merge = [t.transpose(1, 2).flatten(2) for t in (qkv.q, qkv.k, qkv.v)]
                    return tuple(t.clone() for t in merge)
                attn, attn_res, ffn = attention_features(block, x)
                out = {"block": attn_res + ffn, "ffn": ffn, "attn": attn, "attn_residual": attn_res}[site]
        return out.clone()


def resolve_teacher(
    config: TeacherConfig, student_depth: int, img_size: int, allow_pretrain: bool = True
) -> Teacher:
    """Build the teacher named by ``config.source``; pre-trains the builtin teacher on first use."""
    source = config.source
    kind, _, rest = source.partition(":")
    meta: dict[str, Any] = {}
    if kind == "builtin":
        from tinymim.pretrain import builtin_teacher_path

        path = builtin_teacher_path(rest or "mae-teacher-default", allow_pretrain=allow_pretrain)
        vit, _, meta = load_tinymim_checkpoint(path, img_size=img_size)
        weight_hash = file_sha256(path)
    elif kind == "tinymim":
        vit, _, meta = load_tinymim_checkpoint(rest, img_size=img_size)
        weight_hash = file_sha256(rest)
    elif kind == "mae":
        if not config.arch:
            raise ConfigError("teacher.arch is required for mae: sources (e.g. mae_vit_large, mae_vit_base)")
        path = fetch_mae_file(rest, config.sha256)
        log(f"tinymim: loading {path}. {MAE_LICENCE}")
        vit = build_vit(arch_config(config.arch, img_size))
        load_encoder_weights(vit, encoder_state_from_checkpoint(_torch_load(path), path), path)
        weight_hash = file_sha256(path)
    elif kind == "timm":
        vit, weight_hash = _timm_teacher(rest, img_size)
    elif kind == "random":
        vit = build_vit(arch_config(config.arch or "default_teacher", img_size))
        weight_hash = "random"
    else:
        raise ConfigError(
            f"teacher.source {source!r}: expected builtin[:PRESET], mae:PATH_OR_URL, timm:NAME[@FILE], "
            f"tinymim:PATH or random"
        )
    depth = len(vit.blocks)
    target = (
        config.target_block if config.target_block is not None else default_target_block(depth, student_depth)
    )
    if not 1 <= target <= depth:  # 0 is an error, not the default
        raise ConfigError(
            f"teacher.target_block={target} is outside 1..{depth} (the teacher has {depth} blocks)"
        )
    if meta.get("license"):
        log(f"tinymim: teacher licence: {meta['license']}")
    return Teacher(vit, target, config.relation_heads, source, weight_hash)


def _timm_teacher(spec: str, img_size: int) -> tuple[VisionTransformer, str]:
    import timm

    name, _, file = spec.partition("@")
    kwargs: dict[str, Any] = {"num_classes": 0}
    if file:
        if not Path(file).is_file():
            raise MissingFileError("timm weights file", file, "--model.teacher.source timm:NAME@FILE")
        kwargs["pretrained_cfg_overlay"] = {"file": file}
    try:
        model = timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # timm raises many kinds of errors when the hub is unreachable
        raise OfflineError(
            Path(file or name),
            None,
            f"timm could not fetch {name} ({type(err).__name__}); download the MAE .pth on a machine with network "
            f"access and use --model.teacher.source timm:{name}@FILE or mae:FILE",
        ) from None
    log(f"tinymim: loaded timm:{name}. {MAE_LICENCE}")
    if img_size != model.patch_embed.img_size[0]:
        raise ConfigError(
            f"timm teacher {name} expects img_size {model.patch_embed.img_size[0]}, data uses {img_size}"
        )
    return model, file_sha256(file) if file else name
