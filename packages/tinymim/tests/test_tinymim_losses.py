"""Formula tests: relation maps/losses (Eqs. 3–5, 9), CLS KD (Eq. 6), feature KD (Eqs. 7–8)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from tinymim.losses import (
    cls_kd_loss,
    feature_kd_loss,
    kl_teacher_student,
    relation_distillation_loss,
    relation_kd_loss,
    relation_logits,
    relation_maps,
    smooth_l1,
)
from tinymim.models import QKV, block_qkv


def _random_qkv(batch=2, heads=3, tokens=5, dim=4, seed=0) -> QKV:
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, tokens, dim, generator=gen) for _ in range(3))
    return QKV(q, k, v, dim**-0.5)


def test_relation_maps_shape_rows_and_independent_timm_computation():
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=24, depth=2, num_heads=3, num_classes=0)
    images = torch.randn(2, 3, 16, 16)
    x = vit.norm_pre(vit._pos_embed(vit.patch_embed(images)))
    block = vit.blocks[0]
    maps = relation_maps(block_qkv(block, x), ("qk", "vv", "qq", "kk"))
    for name, rel in maps.items():
        assert rel.shape == (2, 3, 17, 17), name
        assert torch.allclose(rel.sum(-1), torch.ones(2, 3, 17), atol=1e-5)
    # independent computation: LN(F_{k-1}) through the block's own qkv, explicit softmax
    h = block.norm1(x)
    w_q, w_k, w_v = block.attn.qkv.weight.chunk(3)
    b_q, b_k, b_v = block.attn.qkv.bias.chunk(3)
    q = (h @ w_q.T + b_q).reshape(2, 17, 3, 8).transpose(1, 2)
    k = (h @ w_k.T + b_k).reshape(2, 17, 3, 8).transpose(1, 2)
    v = (h @ w_v.T + b_v).reshape(2, 17, 3, 8).transpose(1, 2)
    expected_qk = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
    expected_vv = torch.softmax(v @ v.transpose(-1, -2) / math.sqrt(8), dim=-1)
    assert torch.allclose(maps["qk"], expected_qk, atol=1e-5)
    assert torch.allclose(maps["vv"], expected_vv, atol=1e-5)
    # the attention timm itself computes (unfused) equals the QK map
    block.attn.fused_attn = False
    captured = {}
    block.attn.attn_drop.register_forward_hook(lambda m, i, o: captured.setdefault("attn", o))
    block(x)
    assert torch.allclose(captured["attn"], maps["qk"], atol=1e-5)


def test_relation_loss_zero_for_identical_maps_and_asymmetric():
    s = _random_qkv(seed=1)
    assert abs(float(relation_distillation_loss(s, s)["loss"])) < 1e-6
    a = torch.randn(2, 2, 4, 4)
    b = torch.randn(2, 2, 4, 4)
    assert not torch.isclose(relation_kd_loss(a, b), relation_kd_loss(b, a))


def test_relation_loss_matches_hand_computed_kl_teacher_student():
    # one batch, one head, 2 tokens: rows are 2-way distributions
    t = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    s = torch.tensor([[0.5, 0.5], [0.6, 0.4]])
    row0 = 0.7 * math.log(0.7 / 0.5) + 0.3 * math.log(0.3 / 0.5)
    row1 = 0.2 * math.log(0.2 / 0.6) + 0.8 * math.log(0.8 / 0.4)
    expected = (row0 + row1) / 2  # mean over B·M·N = 2 query rows
    loss = relation_kd_loss(s.log()[None, None], t.log()[None, None])
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert kl_teacher_student(s.log()[None, None], t.log()[None, None]).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_relation_total_is_qk_plus_vv_and_differs_from_batchmean_by_heads_times_tokens():
    s, t = _random_qkv(seed=2), _random_qkv(seed=3)
    terms = relation_distillation_loss(s, t)
    assert torch.allclose(terms["loss"], terms["qk"] + terms["vv"])
    s_log = torch.log_softmax(relation_logits(s, "qk"), -1)
    t_log = torch.log_softmax(relation_logits(t, "qk"), -1)
    batchmean = F.kl_div(s_log, t_log, reduction="batchmean", log_target=True)
    heads, tokens = s.q.shape[1], s.q.shape[2]
    assert torch.allclose(batchmean / (heads * tokens), terms["qk"], atol=1e-6)
    three = relation_distillation_loss(s, t, ("qq", "kk", "vv"))
    assert torch.allclose(three["loss"], three["qq"] + three["kk"] + three["vv"])


def test_relation_loss_no_softmax_is_mse_of_logits():
    s, t = _random_qkv(seed=4), _random_qkv(seed=5)
    out = relation_distillation_loss(s, t, softmax=False)
    expected = F.mse_loss(relation_logits(s, "qk"), relation_logits(t, "qk")) + F.mse_loss(
        relation_logits(s, "vv"), relation_logits(t, "vv")
    )
    assert torch.allclose(out["loss"], expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_relation_loss_finite_under_autocast_with_large_logits(dtype):
    gen = torch.Generator().manual_seed(0)
    s = (torch.randn(2, 2, 8, 8, generator=gen) * 50).requires_grad_()
    t = torch.randn(2, 2, 8, 8, generator=gen) * 50
    with torch.autocast("cpu", dtype=dtype):
        loss = relation_kd_loss(s.to(dtype), t.to(dtype))
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(s.grad).all()
    # the legacy softmax().log() form in low precision is where -inf appears
    legacy = torch.softmax(s.detach().half(), -1).log()
    assert torch.isinf(legacy).any()


def test_head_mismatch_raises_naming_heads():
    s = _random_qkv(heads=4)
    t = _random_qkv(heads=2)
    with pytest.raises(ValueError, match="heads"):
        relation_distillation_loss(s, t)


def test_cls_kd_matches_hand_computation():
    s = torch.tensor([[1.0, 0.0, -1.0]])
    t = torch.tensor([[0.0, 2.0, 0.0]])
    ps, pt = torch.softmax(s, -1), torch.softmax(t, -1)
    expected = float((pt * (pt.log() - ps.log())).sum())
    assert cls_kd_loss(s, t).item() == pytest.approx(expected, abs=1e-6)


def test_smooth_l1_both_branches_and_feature_target_layernorm():
    pred = torch.tensor([0.0, 0.0, 0.0])
    target = torch.tensor([1.0, 3.0, -5.0])  # |d| = 1 ≤ β, 3 > β, 5 > β  with β = 2
    expected = (0.5 * 1 / 2 + (3 - 1) + (5 - 1)) / 3
    assert smooth_l1(pred, target, 2.0).item() == pytest.approx(expected)
    teacher = torch.tensor([[[1.0, 2.0, 3.0, 6.0]]])
    mean, var = teacher.mean(), teacher.var(unbiased=False)
    ln = (teacher - mean) / torch.sqrt(var + 1e-6)
    student = torch.zeros_like(teacher)
    d = ln.abs()
    by_hand = torch.where(d <= 2, 0.5 * d**2 / 2, d - 1).mean()
    assert feature_kd_loss(student, teacher).item() == pytest.approx(by_hand.item(), abs=1e-6)
