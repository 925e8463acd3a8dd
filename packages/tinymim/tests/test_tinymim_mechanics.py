"""Architecture and mechanics: adaptive block, truncated teacher, sources, fast vs reference, frozen params."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from timm.models.vision_transformer import Block, VisionTransformer
from tinymim.distill import DistillHeads, DistillOptions, distillation_step, unused_student_parameters
from tinymim.losses import relation_maps
from tinymim.models import (
    ViTConfig,
    block_qkv,
    build_vit,
    default_target_block,
    embed_tokens,
    set_block_heads,
    sincos_pos_embed_2d,
)
from tinymim.optim import cosine_lr, is_no_decay, layer_id, param_groups
from tinymim.teacher import (
    Teacher,
    TeacherConfig,
    arch_config,
    load_tinymim_checkpoint,
    resolve_teacher,
    save_tinymim_checkpoint,
)

from paperlab_core.data import OfflineError


def test_adaptive_last_block_has_standard_parameters(student_config):
    student = build_vit(student_config)
    standard = build_vit(ViTConfig(**{**student_config.to_dict(), "last_heads": None}))
    last, ref = student.blocks[-1], standard.blocks[-1]
    assert last.attn.num_heads == 4 and last.attn.head_dim == 16 // 4
    assert last.attn.scale == pytest.approx((16 / 4) ** -0.5)
    assert sum(p.numel() for p in last.parameters()) == sum(p.numel() for p in ref.parameters())
    assert [p.shape for p in last.parameters()] == [p.shape for p in ref.parameters()]
    assert [b.attn.num_heads for b in student.blocks] == [2, 2, 4]


def test_adaptive_block_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="not divisible by 12 heads"):
        build_vit(ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, last_heads=12))
    with pytest.raises(ValueError, match="1024/12"):
        Teacher(build_vit(ViTConfig(img_size=16, patch_size=8, embed_dim=1024, depth=1, num_heads=16)), 1, 12)


def test_sincos_pos_embed_fixed_and_cls_zero():
    emb = sincos_pos_embed_2d(8, 2)
    assert emb.shape == (5, 8)
    assert (emb[0] == 0).all()
    # position (row 0, col 1): first half encodes the column with ω_0 = 1 → sin(1), cos(1)
    assert emb[2, 0] == pytest.approx(math.sin(1.0), abs=1e-6)
    assert emb[2, 2] == pytest.approx(math.cos(1.0), abs=1e-6)
    vit = build_vit(ViTConfig(img_size=8, patch_size=4, embed_dim=8, depth=1, num_heads=2))
    assert not vit.pos_embed.requires_grad
    assert torch.allclose(vit.pos_embed[0], torch.from_numpy(emb))


def test_constant_drop_path_and_zero_in_adaptive_block(student_config):
    student = build_vit(student_config, drop_path=0.1)
    rates = [getattr(b.drop_path1, "drop_prob", 0.0) for b in student.blocks]
    assert rates == [0.1, 0.1, 0.0]


def test_default_target_block_rule():
    assert default_target_block(24, 12) == 18
    assert default_target_block(12, 12) == 12
    assert default_target_block(6, 4) == 5


def test_teacher_runs_only_blocks_up_to_k(teacher, images):
    calls: list[str] = []
    for index, blk in enumerate(teacher.vit.blocks):
        blk.register_forward_hook(lambda m, i, o, index=index: calls.append(f"block{index + 1}"))
        blk.norm1.register_forward_hook(lambda m, i, o, index=index: calls.append(f"norm1.{index + 1}"))
        blk.attn.qkv.register_forward_hook(lambda m, i, o, index=index: calls.append(f"qkv.{index + 1}"))
        blk.attn.proj.register_forward_hook(lambda m, i, o, index=index: calls.append(f"proj.{index + 1}"))
        blk.mlp.register_forward_hook(lambda m, i, o, index=index: calls.append(f"mlp.{index + 1}"))
    teacher.vit.norm.register_forward_hook(lambda m, i, o: calls.append("final_norm"))
    qkv = teacher.qkv(images)
    blocks_run = [c for c in calls if c.startswith("block")]
    assert blocks_run == ["block1", "block2"]
    assert "norm1.3" in calls and "qkv.3" in calls
    assert not any(c.endswith(".3") and c.startswith(("proj", "mlp")) for c in calls)
    assert "block4" not in calls and "final_norm" not in calls and "qkv.4" not in calls
    assert qkv.q.shape == (4, 4, 17, 8) and not qkv.q.requires_grad


def test_teacher_frozen_and_stays_eval(teacher):
    assert all(not p.requires_grad for p in teacher.parameters())
    wrapper = torch.nn.Module()
    wrapper.teacher = teacher
    wrapper.train()
    assert not teacher.training and not teacher.vit.blocks[0].training


def test_target_block_validation_and_explicit_value(teacher_vit, student_config):
    with pytest.raises(ValueError, match="outside 1..4"):
        Teacher(teacher_vit, target_block=5)
    assert Teacher(teacher_vit, target_block=2).target_block == 2


def _mae_state(vit: VisionTransformer, with_decoder: bool) -> dict:
    state = {k: v.clone() for k, v in vit.state_dict().items() if not k.startswith("head")}
    if with_decoder:
        state["mask_token"] = torch.zeros(1, 1, 8)
        state["decoder_embed.weight"] = torch.zeros(8, 32)
    return {"model": state}


@pytest.mark.parametrize("with_decoder", [False, True])
@pytest.mark.parametrize("as_url", [False, True])
def test_mae_checkpoint_loads_from_path_and_file_url(
    tmp_path, teacher_vit, images, with_decoder, as_url, monkeypatch
):
    from tinymim import models

    monkeypatch.setitem(
        models.ARCHS, "tiny_test", dict(img_size=16, patch_size=4, embed_dim=32, depth=4, num_heads=4)
    )
    path = tmp_path / "mae.pth"
    torch.save(_mae_state(teacher_vit, with_decoder), path)
    source = f"mae:file://{path}" if as_url else f"mae:{path}"
    teacher = resolve_teacher(TeacherConfig(source=source, arch="tiny_test", target_block=2), 2, 16)
    # relation maps equal those of a plain timm ViT with the same weights
    timm_vit = VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=4, num_heads=4, num_classes=0)
    timm_vit.load_state_dict(teacher_vit.state_dict(), strict=False)
    x = timm_vit.norm_pre(timm_vit._pos_embed(timm_vit.patch_embed(images)))
    x = timm_vit.blocks[0](x)
    expected = relation_maps(block_qkv(timm_vit.blocks[1], x))
    got = relation_maps(teacher.qkv(images))
    for key in ("qk", "vv"):
        assert torch.allclose(got[key], expected[key], atol=1e-5)


def test_mae_checkpoint_missing_or_unexpected_key_is_named(tmp_path, teacher_vit, monkeypatch):
    from tinymim import models

    monkeypatch.setitem(
        models.ARCHS, "tiny_test", dict(img_size=16, patch_size=4, embed_dim=32, depth=4, num_heads=4)
    )
    blob = _mae_state(teacher_vit, True)
    del blob["model"]["blocks.1.attn.qkv.weight"]
    torch.save(blob, tmp_path / "bad.pth")
    with pytest.raises(KeyError, match=r"blocks\.1\.attn\.qkv\.weight"):
        resolve_teacher(TeacherConfig(source=f"mae:{tmp_path / 'bad.pth'}", arch="tiny_test"), 2, 16)
    blob = _mae_state(teacher_vit, False)
    blob["model"]["blocks.9.extra"] = torch.zeros(1)
    torch.save(blob, tmp_path / "odd.pth")
    with pytest.raises(KeyError, match=r"blocks\.9\.extra"):
        resolve_teacher(TeacherConfig(source=f"mae:{tmp_path / 'odd.pth'}", arch="tiny_test"), 2, 16)
    with pytest.raises(ValueError, match=r"target_block=9 is outside 1\.\.4"):
        torch.save(_mae_state(teacher_vit, False), tmp_path / "ok.pth")
        resolve_teacher(
            TeacherConfig(source=f"mae:{tmp_path / 'ok.pth'}", arch="tiny_test", target_block=9), 2, 16
        )


def test_timm_source_offline_gives_one_line_error():
    with pytest.raises(OfflineError) as info:
        resolve_teacher(TeacherConfig(source="timm:vit_base_patch16_224.mae"), 12, 224)
    assert "\n" not in str(info.value) and "vit_base_patch16_224.mae" in str(info.value)


def test_tinymim_checkpoint_keeps_head_counts_and_sequential_fix(tmp_path):
    # a TinyMIM-S-shaped student: 6 heads in blocks 1..L-1, 12 in the last block, recorded in meta
    s_cfg = ViTConfig(img_size=16, patch_size=4, embed_dim=48, depth=3, num_heads=6, last_heads=12)
    path = save_tinymim_checkpoint(tmp_path / "s.pth", build_vit(s_cfg), s_cfg)
    model, _, meta = load_tinymim_checkpoint(path)
    assert meta["block_heads"] == [6, 6, 12] and model.blocks[-1].attn.num_heads == 12
    t_student = build_vit(
        ViTConfig(img_size=16, patch_size=4, embed_dim=24, depth=3, num_heads=6, last_heads=12)
    )
    teacher = resolve_teacher(TeacherConfig(source=f"tinymim:{path}"), 3, 16)
    assert teacher.relation_heads == 12
    heads = DistillHeads(t_student, teacher.embed_dim, DistillOptions(), None)
    imgs = torch.randn(2, 3, 16, 16)
    loss = distillation_step(t_student, teacher, heads, imgs, imgs, DistillOptions())["loss"]
    assert torch.isfinite(loss)
    # the official reader views the teacher with 6 heads: the loss names the head mismatch
    official = resolve_teacher(TeacherConfig(source=f"tinymim:{path}", relation_heads=6), 3, 16)
    with pytest.raises(ValueError, match="12 heads but the teacher's relation uses 6"):
        distillation_step(t_student, official, heads, imgs, imgs, DistillOptions())


def test_fast_and_reference_give_same_loss_and_gradients(student_config, teacher, images):
    torch.manual_seed(0)
    student = build_vit(student_config, drop_path=0.0)
    twin = copy.deepcopy(student)
    heads = DistillHeads(student, teacher.embed_dim, DistillOptions(), student_config)
    fast = distillation_step(student, teacher, heads, images, images, DistillOptions(impl="fast"))["loss"]
    ref = distillation_step(twin, teacher, heads, images, images, DistillOptions(impl="reference"))["loss"]
    assert abs(fast.item() - ref.item()) <= 1e-5 * abs(ref.item())
    fast.backward()
    ref.backward()
    for (name, a), b in zip(student.named_parameters(), twin.parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None or b.grad.abs().max() == 0, name
            continue
        scale = b.grad.abs().max().clamp_min(1e-12)
        assert (a.grad - b.grad).abs().max() / scale <= 1e-4, name


def _train_steps(student, teacher, options, images, steps, lr=3e-3):
    heads = DistillHeads(student, teacher.embed_dim, options, None)
    params = [p for p in [*student.parameters(), *heads.parameters()] if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95))
    losses = []
    for _ in range(steps):
        loss = distillation_step(student, teacher, heads, images, images, options)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_unused_parameters_frozen_and_unchanged(student_config, teacher, images):
    torch.manual_seed(0)
    student = build_vit(student_config, drop_path=0.0)
    options = DistillOptions()
    frozen = unused_student_parameters(student, options)
    assert set(frozen) == {
        "blocks.2.attn.proj.weight",
        "blocks.2.attn.proj.bias",
        "blocks.2.norm2.weight",
        "blocks.2.norm2.bias",
        "blocks.2.mlp.fc1.weight",
        "blocks.2.mlp.fc1.bias",
        "blocks.2.mlp.fc2.weight",
        "blocks.2.mlp.fc2.bias",
        "norm.weight",
        "norm.bias",
    }
    params = dict(student.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    before = {n: p.detach().clone() for n, p in student.named_parameters()}
    _train_steps(student, teacher, options, images, 3)
    for name, param in student.named_parameters():
        changed = not torch.equal(before[name], param.detach())
        if name in frozen or name == "pos_embed":
            assert not changed, name
        else:
            assert changed, name


def test_loss_decreases_on_fixed_batch(student_config, teacher, images):
    torch.manual_seed(0)
    student = build_vit(student_config, drop_path=0.0)
    losses = _train_steps(student, teacher, DistillOptions(), images, 50, lr=5e-3)
    assert losses[-1] <= 0.5 * losses[0]


@pytest.mark.parametrize(
    "options",
    [
        DistillOptions(target="relation_qq_kk_vv"),
        DistillOptions(relation_softmax=False),
        DistillOptions(target="cls"),
        DistillOptions(target="cls", cls_site="final"),
        DistillOptions(target="cls_mae"),
        *[
            DistillOptions(target="feature", feature_site=s)
            for s in ("block", "final", "ffn", "attn", "attn_residual", "qkv")
        ],
        DistillOptions(input="masked"),
        DistillOptions(input="masked", mae_aux_weight=1.0),
    ],
    ids=lambda o: (
        f"{o.target}-{o.feature_site}-{o.cls_site}-{o.input}-{o.mae_aux_weight}-{o.relation_softmax}"
    ),
)
def test_every_target_runs_and_reaches_its_parameters(student_config, teacher, images, options):
    torch.manual_seed(0)
    student = build_vit(student_config, drop_path=0.0)
    heads = DistillHeads(student, teacher.embed_dim, options, student_config)
    terms = distillation_step(student, teacher, heads, images, images, options)
    assert torch.isfinite(terms["loss"])
    if options.mae_aux_weight > 0 or options.target == "cls_mae":
        assert "mae" in terms and terms["loss"] > terms["mae"] * 0.999
    terms["loss"].backward()
    unused = set(unused_student_parameters(student, options))
    for name, param in student.named_parameters():
        if name == "pos_embed":
            continue
        if name in unused:
            assert param.grad is None, name


def test_feature_sites_match_hooks_on_the_timm_block(teacher, images):
    block: Block = teacher.vit.blocks[teacher.target_block - 1]
    seen = {}
    block.register_forward_hook(lambda m, i, o: seen.setdefault("block", o))
    block.attn.register_forward_hook(lambda m, i, o: seen.setdefault("attn", o))
    block.mlp.register_forward_hook(lambda m, i, o: seen.setdefault("ffn", o))
    with torch.no_grad():
        x = embed_tokens(teacher.vit, images)
        for blk in teacher.vit.blocks[: teacher.target_block]:
            inp = x
            x = blk(x)
    assert torch.allclose(teacher.features(images, "block"), seen["block"], atol=1e-5)
    assert torch.allclose(teacher.features(images, "attn"), seen["attn"], atol=1e-5)
    assert torch.allclose(teacher.features(images, "ffn"), seen["ffn"], atol=1e-5)
    assert torch.allclose(teacher.features(images, "attn_residual"), inp + seen["attn"], atol=1e-5)


def test_masked_input_keeps_token_count_and_uses_mask_token(student_config, images):
    student = build_vit(student_config)
    token = torch.full((1, 1, 16), 7.0)
    mask = torch.zeros(4, 16, dtype=torch.bool)
    mask[:, :5] = True
    out = embed_tokens(student, images, mask, token)
    assert out.shape == (4, 17, 16)
    pos = student.pos_embed[0, 1:6]
    assert torch.allclose(out[:, 1:6], 7.0 + pos, atol=1e-6)


def test_no_decay_groups_and_layer_decay_ratios():
    vit = build_vit(ViTConfig(img_size=8, patch_size=4, embed_dim=8, depth=4, num_heads=2), num_classes=3)
    named = list(vit.named_parameters())
    assert not is_no_decay("cls_token", vit.cls_token)
    assert is_no_decay("cls_token", vit.cls_token, decay_cls_token=False)
    assert is_no_decay("blocks.0.attn.qkv.bias", vit.blocks[0].attn.qkv.bias)
    groups = param_groups(named, 0.05, True, 0.65, 4)
    scales = {}
    for group in groups:
        for name in group["names"]:
            scales[name] = group["lr_scale"]
            assert "pos_embed" != name  # frozen: never optimised
    # independent computation for depth 4: layer ids 0 (embeddings), 1..4 (blocks), 5 (head/norm)
    assert scales["cls_token"] == pytest.approx(0.65**5)
    assert scales["blocks.0.norm1.weight"] == pytest.approx(0.65**4)
    assert scales["blocks.3.mlp.fc2.weight"] == pytest.approx(0.65**1)
    assert scales["head.weight"] == pytest.approx(1.0)
    assert layer_id("patch_embed.proj.weight", 4) == 0


def test_cosine_schedule_warmup_and_end():
    assert cosine_lr(0, 100, 10, 1.0) == 0.0
    assert cosine_lr(5, 100, 10, 1.0) == pytest.approx(0.5)
    assert cosine_lr(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 10, 1.0) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 10, 1.0, 0.1) == pytest.approx(0.1)


def test_arch_presets_have_paper_shapes():
    large = arch_config("mae_vit_large")
    assert (large.embed_dim, large.depth, large.num_heads) == (1024, 24, 16)
    from tinymim.models import ARCHS

    assert ARCHS["vit_tiny_patch16"]["num_heads"] == 6 and ARCHS["vit_tiny_patch16"]["last_heads"] == 12
    assert ARCHS["vit_base_patch16"]["last_heads"] == 16


def test_set_block_heads_reviews_without_new_parameters(teacher_vit):
    block = teacher_vit.blocks[0]
    count = sum(p.numel() for p in block.parameters())
    set_block_heads(block, 8)
    assert block.attn.num_heads == 8 and sum(p.numel() for p in block.parameters()) == count


def test_pos_embed_interpolation_keeps_cls_and_identity_on_same_grid():
    from tinymim.models import interpolate_pos_embed

    pos = torch.from_numpy(sincos_pos_embed_2d(8, 4))[None]
    assert torch.equal(interpolate_pos_embed(pos, 4), pos)
    big = interpolate_pos_embed(pos, 8)
    assert big.shape == (1, 65, 8) and torch.equal(big[:, 0], pos[:, 0])
    # a constant field stays constant under bicubic resampling
    const = torch.ones(1, 17, 8)
    assert torch.allclose(interpolate_pos_embed(const, 2), torch.ones(1, 5, 8), atol=1e-5)
