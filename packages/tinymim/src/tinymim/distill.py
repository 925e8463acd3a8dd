"""One distillation step as plain functions: the fast truncated path and the full-forward reference.

Used by the LightningModule (:mod:`tinymim.module`), the benchmark and the tests, so all three compute the
same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from tinymim.losses import TARGET_PAIRS, cls_kd_loss, feature_kd_loss, relation_distillation_loss
from tinymim.models import (
    QKV,
    PixelDecoder,
    attention_features,
    block_qkv,
    embed_tokens,
    masked_patch_loss,
    materialised_attention_block,
    patchify,
    random_patch_mask,
    run_blocks,
)
from tinymim.teacher import Teacher

TARGETS = ("relation_qk_vv", "relation_qq_kk_vv", "cls", "cls_mae", "feature")


@dataclass
class DistillOptions:
    """The knobs of a distillation step (see ``TinyMIMDistill`` for their documentation)."""

    target: str = "relation_qk_vv"
    relation_softmax: bool = True
    legacy_log_of_softmax: bool = False
    feature_site: str = "block"
    feature_beta: float = 2.0
    cls_site: str = "block"
    input: str = "raw"
    mask_ratio: float = 0.75
    mae_aux_weight: float = 0.0
    impl: str = "fast"


def unused_student_parameters(student: VisionTransformer, options: DistillOptions) -> list[str]:
    """Names of student parameters that the target never reaches (frozen during distillation, spec §2.4)."""
    last = f"blocks.{len(student.blocks) - 1}"
    relation_like = options.target.startswith("relation") or (
        options.target == "feature" and options.feature_site == "qkv"
    )
    names: list[str] = []
    if relation_like:
        names += [f"{last}.attn.proj", f"{last}.norm2", f"{last}.mlp"]
    elif options.target == "feature" and options.feature_site == "attn":
        names += [f"{last}.norm2", f"{last}.mlp"]
    uses_final = (
        (options.target == "feature" and options.feature_site == "final")
        or (options.target in ("cls", "cls_mae") and options.cls_site == "final")
        or options.target == "cls_mae"
    )
    if not uses_final:
        names.append("norm.")
    return [n for n, _ in student.named_parameters() if any(n.startswith(p) for p in names)]


def student_last_qkv(student: VisionTransformer, x: torch.Tensor) -> QKV:
    """The fast path: blocks 1..L−1 with SDPA, then only ``norm1`` + ``qkv`` of the last block."""
    x = run_blocks(student, x, 0, len(student.blocks) - 1)
    return block_qkv(student.blocks[-1], x), x


def reference_student(student: VisionTransformer, x: torch.Tensor) -> tuple[QKV, torch.Tensor]:
    """Reference: every block with an explicit attention map, the last block's input captured, final norm run."""
    last_input = x
    for index, blk in enumerate(student.blocks):
        if index == len(student.blocks) - 1:
            last_input = x
        x = materialised_attention_block(blk, x)
    out = student.norm(x)
    return block_qkv(student.blocks[-1], last_input), out


def reference_teacher(teacher: Teacher, images: torch.Tensor) -> QKV:
    """Reference: the full teacher with explicit attention maps in every block; targets from block k's input."""
    with torch.no_grad():
        x = embed_tokens(teacher.vit, images)
        captured = None
        for index, blk in enumerate(teacher.vit.blocks):
            if index == teacher.target_block - 1:
                captured = block_qkv(blk, x, teacher.relation_heads)
            x = materialised_attention_block(blk, x)
        teacher.vit.norm(x)
    assert captured is not None
    return captured


class DistillHeads(nn.Module):
    """Trainable extras of some targets: projections, mask token and the MAE-aux pixel decoder."""

    def __init__(
        self, student: VisionTransformer, teacher_dim: int, options: DistillOptions, student_config
    ) -> None:
        super().__init__()
        dim = student.embed_dim
        if options.target == "feature":
            count = 3 if options.feature_site == "qkv" else 1
            self.projections = nn.ModuleList(nn.Linear(dim, teacher_dim) for _ in range(count))
        elif options.target in ("cls", "cls_mae"):
            self.projections = nn.ModuleList([nn.Linear(dim, teacher_dim)])
        else:
            self.projections = nn.ModuleList()
        self.mask_token = None
        if options.input == "masked" or options.target == "cls_mae":
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.normal_(self.mask_token, std=0.02)
        self.decoder = None
        if options.mae_aux_weight > 0 or options.target == "cls_mae":
            self.decoder = PixelDecoder(dim, student_config)


def distillation_step(
    student: VisionTransformer,
    teacher: Teacher,
    heads: DistillHeads,
    teacher_images: torch.Tensor,
    student_images: torch.Tensor,
    options: DistillOptions,
) -> dict[str, torch.Tensor]:
    """The loss of one batch; returns the named terms and the total under ``"loss"``."""
    target = options.target
    if target not in TARGETS:
        raise ValueError(f"model.target {target!r} unknown; expected one of {TARGETS}")
    patches = student.patch_embed.num_patches
    mask = None
    if options.input == "masked":
        mask = random_patch_mask(student_images.shape[0], patches, options.mask_ratio, student_images.device)
    elif options.input != "raw":
        raise ValueError(f"model.input must be 'raw' or 'masked', got {options.input!r}")
    x = embed_tokens(student, student_images, mask, heads.mask_token)
    terms: dict[str, torch.Tensor] = {}
    aux_tokens = None
    if target in TARGET_PAIRS:
        if options.impl == "reference":
            s_qkv, _ = reference_student(student, x)
            t_qkv = reference_teacher(teacher, teacher_images)
            aux_tokens = None
        else:
            s_qkv, aux_tokens = student_last_qkv(student, x)
            t_qkv = teacher.qkv(teacher_images)
        terms.update(
            relation_distillation_loss(
                s_qkv, t_qkv, TARGET_PAIRS[target], options.relation_softmax, options.legacy_log_of_softmax
            )
        )
    elif target == "feature":
        site = options.feature_site
        t_feat = teacher.features(teacher_images, site)
        if site == "final":
            s_feat = student.norm(run_blocks(student, x, 0, len(student.blocks)))
        else:
            aux_tokens = run_blocks(student, x, 0, len(student.blocks) - 1)
            last = student.blocks[-1]
            if site == "qkv":
                qkv = block_qkv(last, aux_tokens)
                s_feat = tuple(t.transpose(1, 2).flatten(2) for t in (qkv.q, qkv.k, qkv.v))
            else:
                attn, attn_res, ffn = attention_features(last, aux_tokens)
                s_feat = {"block": attn_res + ffn, "ffn": ffn, "attn": attn, "attn_residual": attn_res}[site]
        if site == "qkv":
            parts = [
                feature_kd_loss(proj(s), t, options.feature_beta)
                for proj, s, t in zip(heads.projections, s_feat, t_feat, strict=True)
            ]
            terms["feature"] = torch.stack(parts).mean()
        else:
            terms["feature"] = feature_kd_loss(heads.projections[0](s_feat), t_feat, options.feature_beta)
        terms["loss"] = terms["feature"]
    else:  # cls / cls_mae
        t_feat = teacher.features(teacher_images, "final" if options.cls_site == "final" else "block")
        s_out = run_blocks(student, x, 0, len(student.blocks))
        if options.cls_site == "final":
            s_out = student.norm(s_out)
        terms["cls"] = cls_kd_loss(heads.projections[0](s_out[:, 0]), t_feat[:, 0])
        terms["loss"] = terms["cls"]
        if target == "cls_mae":
            mae_mask = random_patch_mask(
                student_images.shape[0], patches, options.mask_ratio, student_images.device
            )
            masked = embed_tokens(student, student_images, mae_mask, heads.mask_token)
            tokens = student.norm(run_blocks(student, masked, 0, len(student.blocks)))
            pred = heads.decoder(tokens)
            terms["mae"] = masked_patch_loss(
                pred, patchify(student_images, student.patch_embed.patch_size[0]), mae_mask.float()
            )
            terms["loss"] = terms["loss"] + terms["mae"]
    if options.mae_aux_weight > 0 and target != "cls_mae":
        if mask is None or aux_tokens is None:
            raise ValueError(
                "mae_aux_weight > 0 needs model.input=masked and a truncated target (relation/feature)"
            )
        pred = heads.decoder(aux_tokens)
        terms["mae"] = masked_patch_loss(
            pred, patchify(student_images, student.patch_embed.patch_size[0]), mask.float()
        )
        terms["loss"] = terms["loss"] + options.mae_aux_weight * terms["mae"]
    return terms
