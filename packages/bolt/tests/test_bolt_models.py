"""TokenViT against timm, MAE masking and loss, backbone generality (spec §6 items 9–10)."""

from __future__ import annotations

import pytest
import timm
import torch
from bolt_ssl.losses import mae_loss, patchify
from bolt_ssl.models import TokenViT, ViTConfig
from bolt_ssl.perturb import PerturbConfig, make_generator
from bolt_ssl.pretrain import (
    HeadsConfig,
    MAEConfig,
    PretrainNets,
    RankConfig,
    SSLConfig,
    random_token_split,
    ssl_step,
)


@pytest.mark.parametrize("no_embed_class", [False, True])
def test_token_path_equals_timm_forward_features(no_embed_class):
    torch.manual_seed(0)
    model = TokenViT(ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2))
    if no_embed_class:  # the deit-3 layout: no position for CLS
        model.vit.no_embed_class = True
        model.vit.pos_embed = torch.nn.Parameter(torch.randn(1, 16, 32) * 0.02)
    x = torch.randn(3, 3, 16, 16)
    reference = model.vit.forward_features(x)
    assert torch.allclose(model.blocks_forward(model.add_pos(model.embed(x))), reference, atol=1e-6)
    assert torch.allclose(model(x), reference[:, 0], atol=1e-6)
    mean = TokenViT(ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, readout="mean"))
    z = mean.blocks_forward(mean.add_pos(mean.embed(x)))
    assert torch.allclose(mean(x), z[:, 1:].mean(1), atol=1e-6)


def test_wrong_channels_or_size_give_a_readable_error():
    model = TokenViT(ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2))
    with pytest.raises(ValueError, match=r"expected \(B, 3, 16, 16\)"):
        model.check_input(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="not a multiple"):
        ViTConfig(img_size=28, patch_size=8)


def test_mae_masks_75_percent_and_ignores_visible_targets():
    g = make_generator("cpu", 0)
    keep, restore, mask = random_token_split(4, 49, 49 - round(0.75 * 49), g, torch.device("cpu"))
    assert torch.equal(restore.gather(1, keep), torch.arange(12).expand(4, 12))  # kept tokens come first
    assert (mask.sum(1) == round(0.75 * 49)).all() and keep.shape == (4, 12)
    assert (mask.gather(1, keep) == 0).all()
    pred = torch.randn(4, 49, 48)
    target = torch.randn(4, 49, 48)
    changed = target.clone()
    changed[mask == 0] += 5.0  # visible-patch targets do not enter the loss
    assert mae_loss(pred, target, mask) == mae_loss(pred, changed, mask)
    changed[mask == 1] += torch.randn_like(changed[mask == 1])
    assert mae_loss(pred, target, mask) != mae_loss(pred, changed, mask)


def test_mae_targets_are_per_patch_normalised():
    target = torch.randn(2, 5, 12) * 3 + 7
    normed = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    mask = torch.ones(2, 5)
    assert float(mae_loss(normed, target, mask, norm_pix=True)) == pytest.approx(0.0, abs=1e-6)
    assert float(mae_loss(target, target, mask, norm_pix=False)) == 0.0


def test_patchify_follows_the_patch_embedding_token_order():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 4, 48)
    assert torch.equal(
        p[0, 1].reshape(4, 4, 3).permute(2, 0, 1), x[0, :, 0:4, 4:8]
    )  # token 1 = top-right patch


def test_scratch_builds_load_no_weights_and_differ_by_seed():
    from bolt_ssl.protocols import Init, build_backbone

    cfg = ViTConfig(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    a = build_backbone(Init("scratch", cfg), 0, torch.device("cpu"))
    b = build_backbone(Init("scratch", cfg), 0, torch.device("cpu"))
    c = build_backbone(Init("scratch", cfg), 1, torch.device("cpu"))
    assert torch.equal(a.vit.pos_embed, b.vit.pos_embed) and not torch.equal(a.vit.pos_embed, c.vit.pos_embed)


def test_vit_small_runs_one_bolt_step_on_two_images():
    """Backbone generality: timm's ViT-S/16 (pretrained=False) through embed → perturb → add_pos → encode."""
    vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    assert vit.embed_dim == 384
    torch.manual_seed(0)
    nets = PretrainNets("bolt", ViTConfig(img_size=224, timm_name="vit_small_patch16_224"), HeadsConfig(64, 32),
                        MAEConfig(), PerturbConfig(), RankConfig())  # fmt: skip
    assert nets.online.num_patches == 196
    out = ssl_step(
        nets, torch.rand(2, 3, 224, 224), SSLConfig("bolt", image_aug="none"), make_generator("cpu", 0)
    )
    out.loss.backward()
    assert torch.isfinite(out.loss) and nets.online.vit.blocks[0].attn.qkv.weight.grad is not None
