"""The paper's distillation objectives as pure functions (TinyMIM, Ren et al. CVPR 2023, Sec. 3.1).

All maps and losses are computed in fp32 (autocast disabled), so they stay finite under fp16/bf16 autocast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tinymim.models import QKV

RELATION_PAIRS = {"qk": ("q", "k"), "vv": ("v", "v"), "qq": ("q", "q"), "kk": ("k", "k")}
TARGET_PAIRS = {"relation_qk_vv": ("qk", "vv"), "relation_qq_kk_vv": ("qq", "kk", "vv")}


def relation_logits(qkv: QKV, pair: str) -> torch.Tensor:
    """Scaled dot products ``A B^T / sqrt(D/M)`` of a relation (before the softmax of Eqs. 3–4), in fp32."""
    if pair not in RELATION_PAIRS:
        raise ValueError(f"unknown relation {pair!r}; expected one of {sorted(RELATION_PAIRS)}")
    first, second = RELATION_PAIRS[pair]
    with torch.autocast(device_type=qkv.q.device.type, enabled=False):
        a = getattr(qkv, first).float()
        b = getattr(qkv, second).float()
        return (a @ b.transpose(-2, -1)) * qkv.scale


def relation_maps(qkv: QKV, pairs: Sequence[str] = ("qk", "vv")) -> dict[str, torch.Tensor]:
    """Relation maps ``R = Softmax(A B^T / sqrt(D/M))`` (paper Eqs. 3–4), each (B, M, N, N), rows sum to 1."""
    return {pair: torch.softmax(relation_logits(qkv, pair), dim=-1) for pair in pairs}


def kl_teacher_student(student_log_probs: torch.Tensor, teacher_log_probs: torch.Tensor) -> torch.Tensor:
    """``mean_{b,m,n} Σ_j t (log t − log s)``: KL(teacher ‖ student) of Eq. 5 with the official reduction.

    Summed over the key axis, averaged over batch × heads × query tokens (CLS row included). This is
    ``KLDivLoss(reduction='batchmean')`` divided by M·N.
    """
    if student_log_probs.shape != teacher_log_probs.shape:
        raise ValueError(
            f"relation maps differ in shape: student {tuple(student_log_probs.shape)} vs teacher "
            f"{tuple(teacher_log_probs.shape)} (B, heads, N, N); the student's last-block heads must equal the "
            f"teacher's relation heads"
        )
    kl = teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)
    return kl.sum(dim=-1).mean()


def relation_kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, legacy_log_of_softmax: bool = False
) -> torch.Tensor:
    """Relation KL of one relation type (Eq. 9, one term) from the maps' logits.

    Uses ``log_softmax`` in fp32 on both sides. ``legacy_log_of_softmax=True`` reproduces the official
    ``softmax(..).log()`` form (which underflows to -inf / NaN in fp16).
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"relation heads mismatch: student maps {tuple(student_logits.shape)} vs teacher maps "
            f"{tuple(teacher_logits.shape)}; set the student's last_heads to the teacher's relation heads"
        )
    with torch.autocast(device_type=student_logits.device.type, enabled=False):
        if legacy_log_of_softmax:
            s = torch.softmax(student_logits, dim=-1).log()
            t = torch.softmax(teacher_logits, dim=-1)
            return (t * (t.log() - s)).sum(dim=-1).mean()
        s = torch.log_softmax(student_logits.float(), dim=-1)
        t = torch.log_softmax(teacher_logits.float(), dim=-1)
        return kl_teacher_student(s, t)


def relation_distillation_loss(
    student: QKV,
    teacher: QKV,
    pairs: Sequence[str] = ("qk", "vv"),
    softmax: bool = True,
    legacy_log_of_softmax: bool = False,
) -> dict[str, torch.Tensor]:
    """``L = L^{QK} + L^{VV}`` (Eq. 9; weights 1 each), or the Q-Q/K-K/V-V variant (Table 7).

    With ``softmax=False`` (Table 7 "no softmax", loss not given in the paper) each term is the MSE between the
    student's and teacher's scaled dot-product logits, averaged over B·M·N·N (proposed).
    Returns the per-relation terms and their sum under ``"loss"``.
    """
    if student.heads != teacher.heads:
        raise ValueError(
            f"relation heads mismatch: the student's last block has {student.heads} heads but the teacher's "
            f"relation uses {teacher.heads}; set model.last_heads (student) or teacher.relation_heads"
        )
    terms: dict[str, torch.Tensor] = {}
    for pair in pairs:
        s_logits = relation_logits(student, pair)
        t_logits = relation_logits(teacher, pair)
        if softmax:
            terms[pair] = relation_kd_loss(s_logits, t_logits, legacy_log_of_softmax)
        else:
            terms[pair] = F.mse_loss(s_logits, t_logits)
    terms["loss"] = torch.stack([terms[p] for p in pairs]).sum()
    return terms


def cls_kd_loss(student_cls: torch.Tensor, teacher_cls: torch.Tensor) -> torch.Tensor:
    """Class-token distillation (Eq. 6): ``KL(softmax(c_t) ‖ softmax(c_s))`` over the feature dimension.

    ``student_cls`` is already projected to the teacher width (proposed; the paper leaves it open).
    Averaged over the batch.
    """
    if student_cls.shape != teacher_cls.shape:
        raise ValueError(
            f"CLS features differ in shape: student {tuple(student_cls.shape)} vs teacher "
            f"{tuple(teacher_cls.shape)} (project the student CLS to the teacher width)"
        )
    with torch.autocast(device_type=student_cls.device.type, enabled=False):
        s = torch.log_softmax(student_cls.float(), dim=-1)
        t = torch.log_softmax(teacher_cls.float(), dim=-1)
        return (t.exp() * (t - s)).sum(dim=-1).mean()


def smooth_l1(pred: torch.Tensor, target: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Elementwise Smooth-L1 of Eq. 8: ``½d²/β`` if ``|d| ≤ β`` else ``|d| − ½β``, averaged over elements."""
    diff = (pred - target).abs()
    return torch.where(diff <= beta, 0.5 * diff**2 / beta, diff - 0.5 * beta).mean()


def feature_kd_loss(
    student_projected: torch.Tensor, teacher_feature: torch.Tensor, beta: float = 2.0, eps: float = 1e-6
) -> torch.Tensor:
    """Feature distillation (Eqs. 7–8): ``SmoothL1(F_s W, LN(F_t))`` with a non-affine LayerNorm target.

    Averaged over all B×N×D_t elements (proposed).
    """
    if student_projected.shape != teacher_feature.shape:
        raise ValueError(
            f"feature shapes differ: projected student {tuple(student_projected.shape)} vs teacher "
            f"{tuple(teacher_feature.shape)}"
        )
    with torch.autocast(device_type=student_projected.device.type, enabled=False):
        target = F.layer_norm(teacher_feature.float(), teacher_feature.shape[-1:], eps=eps)
        return smooth_l1(student_projected.float(), target, beta)
