"""ViT students/teachers built from timm, the adaptive last block, the truncated forward and an MAE model.

Everything here is an ``nn.Module`` or a pure helper; training logic lives in :mod:`tinymim.module`.
Block indices in public arguments are **1-based** as in the paper ("the 18th block" is ``blocks[17]``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

LN6 = partial(nn.LayerNorm, eps=1e-6)


@dataclass
class ViTConfig:
    """Architecture of a plain ViT (MAE/TinyMIM style: CLS token, qkv bias, LayerNorm eps 1e-6, MLP ratio 4)."""

    img_size: int = 32
    patch_size: int = 4
    in_chans: int = 3
    embed_dim: int = 32
    depth: int = 4
    num_heads: int = 2
    last_heads: int | None = None
    mlp_ratio: float = 4.0

    def block_heads(self) -> list[int]:
        """Head count of every block (the last block uses ``last_heads`` when set)."""
        heads = [self.num_heads] * self.depth
        if self.last_heads is not None:
            heads[-1] = self.last_heads
        return heads

    @property
    def num_tokens(self) -> int:
        return (self.img_size // self.patch_size) ** 2 + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Architectures of the paper (official code, spec §2.7). ``last_heads`` is the student's adaptive last block.
ARCHS: dict[str, dict[str, Any]] = {
    "vit_tiny_patch16": dict(
        img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=6, last_heads=12
    ),
    "vit_small_patch16": dict(
        img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6, last_heads=12
    ),
    "vit_base_patch16": dict(
        img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, last_heads=16
    ),
    "mae_vit_small": dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "mae_vit_base": dict(img_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "mae_vit_large": dict(img_size=224, patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    "mae_vit_huge": dict(img_size=224, patch_size=14, embed_dim=1280, depth=32, num_heads=16),
    "default_teacher": dict(img_size=32, patch_size=4, embed_dim=64, depth=6, num_heads=4),
    "default_student": dict(img_size=32, patch_size=4, embed_dim=32, depth=4, num_heads=2, last_heads=4),
}

# Fine-tuning head counts (official ``models_vit.py``): ViT-T fine-tunes with 3 heads (DeiT-T), issue #4.
FINETUNE_HEADS = {192: 3, 384: 6, 768: 12}


def sincos_pos_embed_2d(embed_dim: int, grid_size: int, cls_token: bool = True) -> np.ndarray:
    """Fixed 2-D sine-cosine position embedding (MAE convention), shape ``(1 + grid², D)``; CLS row zeros.

    Half of the channels encode the row coordinate and half the column coordinate; each half is
    ``[sin(p·ω_k), cos(p·ω_k)]`` with ``ω_k = 1 / 10000^(2k/(D/2))``.
    """
    if embed_dim % 4 != 0:
        raise ValueError(f"sin-cos position embedding needs embed_dim divisible by 4, got {embed_dim}")
    coords = np.arange(grid_size, dtype=np.float64)
    grid_w, grid_h = np.meshgrid(coords, coords)  # grid_w varies along columns

    def encode_1d(dim: int, positions: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        angles = np.outer(positions.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    emb = np.concatenate([encode_1d(embed_dim // 2, grid_w), encode_1d(embed_dim // 2, grid_h)], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros((1, embed_dim)), emb], axis=0)
    return emb.astype(np.float32)


def set_block_heads(block: Block, heads: int) -> None:
    """Re-view a timm block's attention with ``heads`` heads (the "adaptive" block, spec §2.5).

    qkv is one ``Linear(D, 3D)``, so only the reshape and the scale change: no parameters are added.
    """
    dim = block.attn.qkv.in_features
    attn_dim = block.attn.qkv.out_features // 3
    if heads < 1 or attn_dim % heads != 0:
        raise ValueError(
            f"attention width {attn_dim} (blocks.*.attn.qkv) is not divisible by {heads} heads: "
            f"head_dim = {attn_dim}/{heads} is not an integer (input width {dim})"
        )
    block.attn.num_heads = heads
    block.attn.head_dim = attn_dim // heads
    block.attn.scale = block.attn.head_dim**-0.5


def block_heads(model: VisionTransformer) -> list[int]:
    """Per-block head counts currently in force (recorded as ``meta.block_heads`` in checkpoints)."""
    return [int(blk.attn.num_heads) for blk in model.blocks]


def _mae_init(model: nn.Module) -> None:
    """MAE initialisation: xavier-uniform Linear (and flattened patch conv), zero bias, LN ones/zeros."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def build_vit(
    config: ViTConfig,
    drop_path: float = 0.0,
    drop_path_schedule: str = "constant",
    num_classes: int = 0,
    global_pool: str = "token",
    fixed_pos_embed: bool = True,
) -> VisionTransformer:
    """A timm ``VisionTransformer`` configured as a TinyMIM student/teacher.

    * fixed 2-D sin-cos position embedding (``requires_grad=False``) unless ``fixed_pos_embed=False``;
    * drop path ``constant`` (official code: the same rate in every block, 0 in an adaptive last block) or
      ``linear`` (timm's stochastic-depth ramp);
    * the last block re-viewed with ``config.last_heads`` heads (spec §2.5);
    * MAE initialisation (xavier-uniform Linear, CLS ~ N(0, 0.02)).
    """
    if drop_path_schedule not in {"constant", "linear"}:
        raise ValueError(f"drop_path_schedule must be 'constant' or 'linear', got {drop_path_schedule!r}")
    if config.img_size % config.patch_size != 0:
        raise ValueError(f"img_size {config.img_size} is not a multiple of patch_size {config.patch_size}")
    if config.embed_dim % config.num_heads != 0:
        raise ValueError(f"embed_dim {config.embed_dim} is not divisible by num_heads {config.num_heads}")
    model = VisionTransformer(
        img_size=config.img_size,
        patch_size=config.patch_size,
        in_chans=config.in_chans,
        num_classes=num_classes,
        global_pool=global_pool,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=True,
        fc_norm=None,
        norm_layer=LN6,
        drop_path_rate=drop_path if drop_path_schedule == "linear" else 0.0,
    )
    _mae_init(model)
    patch_w = model.patch_embed.proj.weight.data
    nn.init.xavier_uniform_(patch_w.view(patch_w.shape[0], -1))
    nn.init.normal_(model.cls_token, std=0.02)
    if fixed_pos_embed:
        grid = config.img_size // config.patch_size
        model.pos_embed.data.copy_(torch.from_numpy(sincos_pos_embed_2d(config.embed_dim, grid))[None])
        model.pos_embed.requires_grad_(False)
    if drop_path_schedule == "constant":
        for blk in model.blocks:
            blk.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
            blk.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
    if config.last_heads is not None:
        set_block_heads(model.blocks[-1], config.last_heads)
        if drop_path_schedule == "constant":
            model.blocks[-1].drop_path1 = nn.Identity()
            model.blocks[-1].drop_path2 = nn.Identity()
    return model


def embed_tokens(
    model: VisionTransformer,
    images: torch.Tensor,
    mask: torch.Tensor | None = None,
    mask_token: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F_0``: patch embedding (+ optional mask token on masked patches) + CLS + position embedding."""
    x = model.patch_embed(images)
    if mask is not None:
        if mask_token is None:
            raise ValueError("a mask was given without a mask token")
        x = torch.where(mask[..., None], mask_token.to(x.dtype).expand_as(x), x)
    x = model._pos_embed(x)
    x = model.patch_drop(x)
    return model.norm_pre(x)


def run_blocks(model: VisionTransformer, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Run ``blocks[start:stop]`` (0-based, half-open)."""
    for blk in model.blocks[start:stop]:
        x = blk(x)
    return x


@dataclass
class QKV:
    """Per-head q, k, v of one block, each (B, M, N, head_dim), with that block's scale."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    scale: float

    @property
    def heads(self) -> int:
        return self.q.shape[1]


def block_qkv(block: Block, x: torch.Tensor, heads: int | None = None) -> QKV:
    """Q, K, V of ``block`` from its input ``F_{k-1}``: ``LN(F_{k-1}) W^{Q,K,V}`` (paper Eqs. 3–4).

    ``heads`` re-views the projection with another head count (``head_dim = D/heads``, scale
    ``head_dim^-0.5``); by default the block's own head count is used.
    """
    attn = block.attn
    heads = int(attn.num_heads if heads is None else heads)
    attn_dim = attn.qkv.out_features // 3
    if attn_dim % heads != 0:
        raise ValueError(f"cannot view attention width {attn_dim} with {heads} heads (not divisible)")
    head_dim = attn_dim // heads
    batch, tokens, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(batch, tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    if heads == attn.num_heads:
        q, k = attn.q_norm(q), attn.k_norm(k)
    return QKV(q, k, v, head_dim**-0.5)


def attention_features(block: Block, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(H_k, Ĥ_k, H̃_k)`` of one block (paper Sec. 3.1): attention, attention+residual, FFN feature."""
    attn_out = block.ls1(block.attn(block.norm1(x)))
    attn_res = x + attn_out
    ffn = block.ls2(block.mlp(block.norm2(attn_res)))
    return attn_out, attn_res, ffn


def materialised_attention_block(block: Block, x: torch.Tensor) -> torch.Tensor:
    """A block forward with an explicit ``softmax(QKᵀ·scale)`` tensor (the benchmark reference)."""
    qkv = block_qkv(block, x)
    attn = torch.softmax((qkv.q * qkv.scale) @ qkv.k.transpose(-2, -1), dim=-1)
    out = (attn @ qkv.v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
    out = block.attn.proj(block.attn.norm(out))
    x = x + block.drop_path1(block.ls1(out))
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


def default_target_block(teacher_depth: int, student_depth: int) -> int:
    """1-based teacher target block (spec §2.6): ``ceil(0.75·L_t)`` if the teacher is deeper, else ``L_t``."""
    if teacher_depth > student_depth:
        return math.ceil(0.75 * teacher_depth)
    return teacher_depth


class MaskedAutoencoder(nn.Module):
    """MAE (He et al. 2022): encoder on 25 % visible patches, light decoder, normalised-pixel MSE.

    The encoder is a :func:`build_vit` model, so its state-dict keys are exactly the MAE encoder keys
    (``cls_token``, ``pos_embed``, ``patch_embed.proj``, ``blocks.i.*``, ``norm``); the decoder keys are
    ``decoder_*`` and ``mask_token`` as in the official MAE checkpoints.
    """

    def __init__(
        self,
        config: ViTConfig,
        decoder_dim: int = 64,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.config = config
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.encoder = build_vit(config, drop_path=drop_path)
        grid = config.img_size // config.patch_size
        self.decoder_embed = nn.Linear(config.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.from_numpy(sincos_pos_embed_2d(decoder_dim, grid))[None], requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_dim, decoder_heads, qkv_bias=True, norm_layer=LN6) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_dim, config.patch_size**2 * config.in_chans)
        _mae_init(self.decoder_blocks)
        _mae_init(self.decoder_embed)
        _mae_init(self.decoder_pred)
        nn.init.normal_(self.mask_token, std=0.02)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        return {
            k: v.detach().clone() for k, v in self.encoder.state_dict().items() if not k.startswith("head")
        }

    def mae_state_dict(self) -> dict[str, torch.Tensor]:
        """The official MAE checkpoint layout: encoder keys at top level plus ``decoder_*``/``mask_token``."""
        out = self.encoder_state_dict()
        for key, value in self.state_dict().items():
            if not key.startswith("encoder."):
                out[key] = value.detach().clone()
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The MAE loss of a batch (random masking drawn from the global torch RNG)."""
        enc = self.encoder
        patches = enc.patch_embed(images) + enc.pos_embed[:, 1:]
        batch, num, dim = patches.shape
        keep = max(1, int(round(num * (1 - self.mask_ratio))))
        noise = torch.rand(batch, num, device=images.device)
        shuffle = noise.argsort(dim=1)
        restore = shuffle.argsort(dim=1)
        visible = torch.gather(patches, 1, shuffle[:, :keep, None].expand(-1, -1, dim))
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(batch, -1, -1)
        x = enc.norm(run_blocks(enc, torch.cat([cls, visible], dim=1), 0, len(enc.blocks)))
        y = self.decoder_embed(x)
        masked = self.mask_token.expand(batch, num - keep, -1)
        seq = torch.cat([y[:, 1:], masked], dim=1)
        seq = torch.gather(seq, 1, restore[..., None].expand(-1, -1, seq.shape[-1]))
        y = torch.cat([y[:, :1], seq], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            y = blk(y)
        pred = self.decoder_pred(self.decoder_norm(y))[:, 1:]
        mask = torch.ones(batch, num, device=images.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, restore)
        return masked_patch_loss(pred, patchify(images, self.config.patch_size), mask, self.norm_pix_loss)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) → (B, N, patch²·C) in row-major patch order (MAE convention)."""
    batch, chans, height, width = images.shape
    h, w = height // patch, width // patch
    x = images.reshape(batch, chans, h, patch, w, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(batch, h * w, patch * patch * chans)


def masked_patch_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True
) -> torch.Tensor:
    """MAE loss: per-patch MSE (targets normalised per patch if ``norm_pix``) averaged over masked patches."""
    target = target.float()
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    loss = ((pred.float() - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum().clamp_min(1.0)


class PixelDecoder(nn.Module):
    """A small MAE-style decoder predicting the pixels of every patch from full-length token features."""

    def __init__(self, in_dim: int, config: ViTConfig, decoder_dim: int = 64, depth: int = 2, heads: int = 4):
        super().__init__()
        grid = config.img_size // config.patch_size
        self.embed = nn.Linear(in_dim, decoder_dim)
        self.pos_embed = nn.Parameter(
            torch.from_numpy(sincos_pos_embed_2d(decoder_dim, grid))[None], requires_grad=False
        )
        self.blocks = nn.ModuleList(
            Block(decoder_dim, heads, qkv_bias=True, norm_layer=LN6) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.pred = nn.Linear(decoder_dim, config.patch_size**2 * config.in_chans)
        _mae_init(self)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        y = self.embed(tokens) + self.pos_embed
        for blk in self.blocks:
            y = blk(y)
        return self.pred(self.norm(y))[:, 1:]


def random_patch_mask(batch: int, num: int, ratio: float, device: torch.device | str) -> torch.Tensor:
    """Boolean (B, N) mask with exactly ``round(ratio·N)`` True (masked) patches per image."""
    count = int(round(num * ratio))
    order = torch.rand(batch, num, device=device).argsort(dim=1)
    mask = torch.zeros(batch, num, dtype=torch.bool, device=device)
    mask.scatter_(1, order[:, :count], True)
    return mask


def interpolate_pos_embed(pos_embed: torch.Tensor, new_grid: int) -> torch.Tensor:
    """Bicubic resize of a (1, 1 + g², D) position embedding to a new grid, CLS row kept (MAE convention)."""
    old = pos_embed.shape[1] - 1
    grid = int(round(math.sqrt(old)))
    if grid * grid != old:
        raise ValueError(f"pos_embed has {old} patch positions, not a square grid")
    if grid == new_grid:
        return pos_embed
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    dim = patches.shape[-1]
    patches = patches.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    patches = patches.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim).to(pos_embed.dtype)
    return torch.cat([cls, patches], dim=1)
