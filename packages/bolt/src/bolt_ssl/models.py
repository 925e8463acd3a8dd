"""Networks only: the token-level ViT wrapper, BYOL heads, the difficulty-ranking head, the MAE decoder (§2.6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import timm
import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from paperlab_core.errors import ConfigError

READOUTS = ("cls", "mean")
#: linear-probe feature sets (ours, ``--probe-features``): the backbone's readout (spec §2.8), mean-pooled patch tokens,
#: CLS ⊕ mean, and the DINO-style concatenation of the final-norm'd CLS of the last 4 blocks
PROBE_FEATURES = ("readout", "mean", "cls+mean", "last4")


@dataclass
class ViTConfig:
    """Backbone: a timm ``VisionTransformer`` built offline (``pretrained=False``), or ``timm_name`` if given."""

    img_size: int = 28
    patch_size: int = 4
    in_chans: int = 3
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    timm_name: str | None = None
    readout: str = "cls"

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ConfigError(f"vit.readout {self.readout!r}: expected one of {', '.join(READOUTS)}")
        if self.timm_name is None and self.img_size % self.patch_size:
            raise ConfigError(
                f"vit.img_size {self.img_size} is not a multiple of vit.patch_size {self.patch_size}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TokenViT(nn.Module):
    """A timm ViT split at the token level: ``embed`` → (perturb) → ``add_pos`` → ``encode``.

    Uses only timm's public attributes (``patch_embed``, ``cls_token``, ``pos_embed``, ``norm_pre``, ``blocks``,
    ``norm``), never the private ``_pos_embed``; handles both ``no_embed_class`` layouts and NHWC patch output.
    """

    def __init__(self, cfg: ViTConfig, learned_mask_token: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        common = {
            "img_size": cfg.img_size,
            "in_chans": cfg.in_chans,
            "num_classes": 0,
            "global_pool": "token",
        }
        if cfg.timm_name:
            vit = timm.create_model(cfg.timm_name, pretrained=False, **common)
            if not isinstance(vit, VisionTransformer):
                raise ValueError(f"vit.timm_name {cfg.timm_name!r} is not a timm VisionTransformer")
        else:
            vit = VisionTransformer(
                patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, depth=cfg.depth, num_heads=cfg.num_heads,
                mlp_ratio=cfg.mlp_ratio, class_token=True, **common,
            )  # fmt: skip
        if vit.cls_token is None or getattr(vit, "reg_token", None) is not None:
            raise ValueError("TokenViT needs a ViT with a CLS token and no register tokens")
        self.vit = vit
        self.embed_dim = vit.embed_dim
        self.num_patches = vit.patch_embed.num_patches
        self.patch_size = vit.patch_embed.patch_size[0]
        self.in_chans = cfg.in_chans
        self.img_size = cfg.img_size
        self.mask_token = nn.Parameter(torch.zeros(self.embed_dim)) if learned_mask_token else None

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a readable ValueError for images the ViT cannot take."""
        expected = (self.in_chans, self.img_size, self.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ConfigError(
                f"images of shape {tuple(x.shape)} do not fit the ViT (expected (B, {expected[0]}, "
                f"{expected[1]}, {expected[2]}): channels = vit.in_chans, size = vit.img_size)"
            )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens t = E(x) ∈ R^{B×N×D}, before any positional embedding."""
        tokens = self.vit.patch_embed(x)
        return tokens.flatten(1, 2) if tokens.ndim == 4 else tokens  # dynamic_img_size gives NHWC

    def add_pos(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend CLS and add the positional embedding: z0 ∈ R^{B×(1+N)×D}."""
        vit = self.vit
        cls = vit.cls_token.expand(tokens.shape[0], -1, -1)
        if vit.no_embed_class:
            return vit.pos_drop(torch.cat([cls, tokens + vit.pos_embed], dim=1))
        return vit.pos_drop(torch.cat([cls, tokens], dim=1) + vit.pos_embed)

    def blocks_forward(self, z: torch.Tensor) -> torch.Tensor:
        """norm_pre → blocks → norm over a token sequence (any length, CLS first)."""
        return self.vit.norm(self.vit.blocks(self.vit.norm_pre(z)))

    def readout(self, z: torch.Tensor) -> torch.Tensor:
        return z[:, 0] if self.cfg.readout == "cls" else z[:, 1:].mean(dim=1)

    def encode(self, z0: torch.Tensor) -> torch.Tensor:
        """h = readout(blocks(z0))."""
        return self.readout(self.blocks_forward(z0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(self.add_pos(self.embed(x)))

    def probe_features(self, x: torch.Tensor, kind: str = "readout") -> torch.Tensor:
        """Frozen features for the linear probe (``PROBE_FEATURES``); ``readout`` equals ``forward``.

        ``last4``: the CLS token after each of the last min(4, depth) blocks, each through the final norm,
        concatenated (the DINO linear-evaluation readout); ``cls+mean``: final CLS ⊕ mean of the final patch tokens.
        """
        if kind == "readout":
            return self(x)
        if kind not in PROBE_FEATURES:
            raise ConfigError(f"probe features {kind!r}: expected one of {', '.join(PROBE_FEATURES)}")
        z = self.vit.norm_pre(self.add_pos(self.embed(x)))
        outs = []
        for block in self.vit.blocks:
            z = block(z)
            outs.append(z)
        last = self.vit.norm(outs[-1])
        if kind == "mean":
            return last[:, 1:].mean(dim=1)
        if kind == "cls+mean":
            return torch.cat([last[:, 0], last[:, 1:].mean(dim=1)], dim=-1)
        return torch.cat([self.vit.norm(o[:, 0]) for o in outs[-4:]], dim=-1)


class MLPHead(nn.Module):
    """BYOL projector / predictor: Linear → BatchNorm1d → ReLU → Linear (standard)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RankHead(nn.Module):
    """Difficulty ranking (ours): a scalar linear score per feature (``online_both``) or per feature pair
    (``online_target``: w·[h_a ; h_b] + b). A higher score means a harder perturbation."""

    def __init__(self, dim: int, pair: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * dim if pair else dim, 1)

    def forward(self, h: torch.Tensor, other: torch.Tensor | None = None) -> torch.Tensor:
        x = h if other is None else torch.cat([h, other], dim=-1)
        return self.linear(x).squeeze(-1)


class MAEDecoder(nn.Module):
    """A light MAE decoder: embed → insert mask tokens → + positions → blocks → per-patch pixels (standard)."""

    def __init__(
        self, embed_dim: int, num_patches: int, patch_size: int, in_chans: int, dim: int = 64, depth: int = 2,
        heads: int = 4,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, num_patches + 1, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio=2.0) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_size * patch_size * in_chans)
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, encoded: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        """``encoded``: (B, 1+V, D) CLS + visible tokens; ``restore``: (B, N) index into [visible; masked]
        that puts every token back at its position. Returns (B, N, P·P·C) predictions."""
        x = self.embed(encoded)
        batch, n_tokens = restore.shape
        visible = x[:, 1:]
        masked = self.mask_token.expand(batch, n_tokens - visible.shape[1], -1)
        full = torch.cat([visible, masked], dim=1).gather(1, restore[..., None].expand(-1, -1, x.shape[-1]))
        z = torch.cat([x[:, :1], full], dim=1) + self.pos
        return self.pred(self.norm(self.blocks(z)))[:, 1:]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
