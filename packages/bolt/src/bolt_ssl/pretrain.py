"""One pre-training step per method, shared by the LightningModule, the benchmark and the tests.

``bolt`` / ``token_byol`` (λ = 0): spec §2.1 — one patch embedding per branch, two token-space views with shared
realisations, symmetric BYOL loss plus λ·L_rank. ``byol``: pixel-space BYOL (two augmented images, four
patch-embedding calls). ``mae``: masked autoencoding (75 % of tokens, loss on masked patches only).
Images enter in [0, 1]; :class:`PretrainNets` standardises them with its ``norm_mean``/``norm_std`` buffers.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bolt_ssl import augment
from bolt_ssl.ema import freeze_
from bolt_ssl.losses import (
    RANK_LOSSES,
    byol_loss,
    mae_loss,
    pairwise_accuracy,
    patchify,
    rank_bce,
    rank_labels,
    rank_margin,
)
from bolt_ssl.models import MAEDecoder, MLPHead, RankHead, TokenViT, ViTConfig
from bolt_ssl.perturb import PerturbConfig, apply_realisation, draw_realisation, sample_strengths
from paperlab_core.errors import ConfigError

METHODS = ("bolt", "token_byol", "byol", "mae")
TOKEN_SOURCES = ("per_branch", "shared_detached")
RANK_INPUTS = ("online_both", "online_target")


@dataclass
class RankConfig:
    """Difficulty ranking (ours): weight λ, pairwise loss, head input, margin, tie exclusion."""

    weight: float = 0.5
    loss: str = "bce"
    input: str = "online_both"
    margin: float = 0.1
    tie_eps: float = 0.0

    def __post_init__(self) -> None:
        if self.loss not in RANK_LOSSES:
            raise ConfigError(f"rank.loss {self.loss!r}: expected one of {', '.join(RANK_LOSSES)}")
        if self.input not in RANK_INPUTS:
            raise ConfigError(f"rank.input {self.input!r}: expected one of {', '.join(RANK_INPUTS)}")
        if self.weight < 0:
            raise ConfigError(f"rank.weight (λ) must be ≥ 0, got {self.weight}")


@dataclass
class EMAConfig:
    tau_base: float = 0.99
    schedule: str = "cosine"


@dataclass
class HeadsConfig:
    """BYOL projector/predictor widths (CPU: 256 hidden / 64 out; standard: 4096 / 256)."""

    hidden: int = 256
    out: int = 64


@dataclass
class MAEConfig:
    mask_ratio: float = 0.75
    decoder_dim: int = 64
    decoder_depth: int = 2
    decoder_heads: int = 4
    norm_pix: bool = True


@dataclass
class SSLConfig:
    """Everything a step needs besides the networks."""

    method: str = "bolt"
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    mae: MAEConfig = field(default_factory=MAEConfig)
    token_source: str = "per_branch"
    image_aug: str = "shared"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r}: expected one of {', '.join(METHODS)}")
        if self.token_source not in TOKEN_SOURCES:
            raise ConfigError(
                f"token_source {self.token_source!r}: expected one of {', '.join(TOKEN_SOURCES)}"
            )
        if self.image_aug not in augment.IMAGE_AUGS:
            raise ConfigError(
                f"image_aug {self.image_aug!r}: expected one of {', '.join(augment.IMAGE_AUGS)}"
            )

    @property
    def rank_weight(self) -> float:
        """λ: 0 for token-BYOL whatever ``rank.weight`` says."""
        return 0.0 if self.method == "token_byol" else self.rank.weight


class PretrainNets(nn.Module):
    """Online encoder/projector/predictor, ranking head, EMA target encoder/projector, or an MAE decoder."""

    def __init__(self, method: str, vit: ViTConfig, heads: HeadsConfig, mae: MAEConfig, perturb: PerturbConfig,
                 rank: RankConfig) -> None:  # fmt: skip
        super().__init__()
        self.method = method
        self.online = TokenViT(vit, learned_mask_token=perturb.mask_value == "learned" and method != "byol")
        dim = self.online.embed_dim
        self.register_buffer("norm_mean", torch.zeros(vit.in_chans))
        self.register_buffer("norm_std", torch.ones(vit.in_chans))
        if method == "mae":
            self.decoder = MAEDecoder(dim, self.online.num_patches, self.online.patch_size, vit.in_chans,
                                      mae.decoder_dim, mae.decoder_depth, mae.decoder_heads)  # fmt: skip
            return
        self.projector = MLPHead(dim, heads.hidden, heads.out)
        self.predictor = MLPHead(heads.out, heads.hidden, heads.out)
        if method in ("bolt", "token_byol"):
            self.rank_head = RankHead(dim, pair=rank.input == "online_target")
        self.target = freeze_(copy.deepcopy(self.online))
        self.target_projector = freeze_(copy.deepcopy(self.projector))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.norm_mean.view(1, -1, 1, 1)) / self.norm_std.view(1, -1, 1, 1)

    def online_pairs(self) -> tuple[nn.Module, nn.Module]:
        """(EMA target, its online source) as two modules with aligned parameter lists."""
        return nn.ModuleList([self.target, self.target_projector]), nn.ModuleList(
            [self.online, self.projector]
        )


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: dict[str, torch.Tensor]


def _rank_terms(
    nets: PretrainNets,
    cfg: SSLConfig,
    h_on: torch.Tensor,
    h_tg: torch.Tensor,
    s1: torch.Tensor,
    s2: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_rank, pairwise accuracy) for the head's input mode."""
    b = s1.shape[0]
    if cfg.rank.input == "online_both":
        r = nets.rank_head(h_on)
        logits, (y, keep) = r[:b] - r[b:], rank_labels(s1, s2, cfg.rank.tie_eps)
        if cfg.rank.loss == "bce":
            loss = rank_bce(logits, y, keep)
        else:
            loss = rank_margin(r[:b], r[b:], y, cfg.rank.margin, keep)
    else:  # online view a vs target view b, both orders: label 1[s_online > s_target]
        tg = h_tg.detach()
        logits = torch.cat([nets.rank_head(h_on[:b], tg[b:]), nets.rank_head(h_on[b:], tg[:b])])
        y, keep = rank_labels(torch.cat([s1, s2]), torch.cat([s2, s1]), cfg.rank.tie_eps)
        zero = torch.zeros_like(logits)
        loss = (
            rank_bce(logits, y, keep)
            if cfg.rank.loss == "bce"
            else rank_margin(logits, zero, y, cfg.rank.margin, keep)
        )
    return loss, pairwise_accuracy(logits.detach(), y)


def _proj_std(z: torch.Tensor) -> torch.Tensor:
    """Per-dimension std over the batch of L2-normalised projections, averaged over dimensions (≈ 1/√d healthy)."""
    return F.normalize(z.detach().float(), dim=-1).std(dim=0).mean()


def token_byol_step(nets: PretrainNets, x: torch.Tensor, cfg: SSLConfig, g: torch.Generator) -> StepOutput:
    """BOLT (λ > 0) or token-BYOL (λ = 0): spec §2.1 on images ``x`` in [0, 1]."""
    online, target = nets.online, nets.target
    x1, x2 = augment.image_views(x, cfg.image_aug, g)
    online.check_input(x1)
    t1 = online.embed(nets.normalise(x1))
    t2 = t1 if x2 is None else online.embed(nets.normalise(x2))
    with torch.no_grad():
        if cfg.token_source == "shared_detached":
            g1, g2 = t1.detach(), t2.detach()
        else:
            g1 = target.embed(nets.normalise(x1))
            g2 = g1 if x2 is None else target.embed(nets.normalise(x2))
    b, n, d = t1.shape
    s1 = sample_strengths(b, cfg.perturb.s_max, g, x.device)
    s2 = sample_strengths(b, cfg.perturb.s_max, g, x.device)
    real1 = draw_realisation(s1, n, d, cfg.perturb, g)
    real2 = draw_realisation(s2, n, d, cfg.perturb, g)
    v_on = torch.cat([apply_realisation(t1, real1, cfg.perturb, online.mask_token),
                      apply_realisation(t2, real2, cfg.perturb, online.mask_token)])  # fmt: skip
    h_on = online.encode(online.add_pos(v_on))
    z_on = nets.projector(h_on)
    p_on = nets.predictor(z_on)
    with torch.no_grad():
        v_tg = torch.cat([apply_realisation(g1, real1, cfg.perturb, target.mask_token),
                          apply_realisation(g2, real2, cfg.perturb, target.mask_token)])  # fmt: skip
        h_tg = target.encode(target.add_pos(v_tg))
        z_tg = nets.target_projector(h_tg)
    l_byol = byol_loss(p_on[:b], p_on[b:], z_tg[:b], z_tg[b:])
    lam = cfg.rank_weight
    if lam > 0:
        l_rank, acc = _rank_terms(nets, cfg, h_on, h_tg, s1, s2)
        loss = l_byol + lam * l_rank
    else:  # token-BYOL: the head is only read for the diagnostic, no gradient reaches anything
        with torch.no_grad():
            l_rank, acc = _rank_terms(nets, cfg, h_on.detach(), h_tg, s1, s2)
        loss = l_byol
    logs = {"loss": loss.detach(), "byol": l_byol.detach(), "rank": l_rank.detach(), "rank_acc": acc,
            "proj_std": _proj_std(z_on[:b])}  # fmt: skip
    return StepOutput(loss, logs)


def pixel_byol_step(nets: PretrainNets, x: torch.Tensor, cfg: SSLConfig, g: torch.Generator) -> StepOutput:
    """Plain BYOL: two independently augmented images, two patch-embedding calls per branch."""
    online, target = nets.online, nets.target
    x1, x2 = augment.byol_view(x, g), augment.byol_view(x, g)
    online.check_input(x1)
    b = x.shape[0]
    z0 = torch.cat(
        [online.add_pos(online.embed(nets.normalise(x1))), online.add_pos(online.embed(nets.normalise(x2)))]
    )
    z_on = nets.projector(online.encode(z0))
    p_on = nets.predictor(z_on)
    with torch.no_grad():
        y0 = torch.cat([target.add_pos(target.embed(nets.normalise(x1))),
                        target.add_pos(target.embed(nets.normalise(x2)))])  # fmt: skip
        z_tg = nets.target_projector(target.encode(y0))
    loss = byol_loss(p_on[:b], p_on[b:], z_tg[:b], z_tg[b:])
    return StepOutput(loss, {"loss": loss.detach(), "byol": loss.detach(), "proj_std": _proj_std(z_on[:b])})


def random_token_split(
    batch: int, n_tokens: int, n_keep: int, g: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(keep (B, n_keep) indices, restore (B, N), mask (B, N) with 1 = masked) for a uniform random split."""
    order = torch.rand(batch, n_tokens, generator=g, device=device).argsort(dim=1)
    restore = order.argsort(dim=1)
    mask = torch.ones(batch, n_tokens, device=device)
    mask.scatter_(1, order[:, :n_keep], 0.0)
    return order[:, :n_keep], restore, mask


def mae_step(nets: PretrainNets, x: torch.Tensor, cfg: SSLConfig, g: torch.Generator) -> StepOutput:
    """MAE: encoder on CLS + the 25 % visible tokens, decoder predicts every patch, loss on masked ones."""
    online = nets.online
    online.check_input(x)
    xn = nets.normalise(x)
    z = online.add_pos(online.embed(xn))
    b, n = z.shape[0], z.shape[1] - 1
    n_keep = n - int(round(cfg.mae.mask_ratio * n))
    keep, restore, mask = random_token_split(b, n, n_keep, g, x.device)
    visible = z[:, 1:].gather(1, keep[..., None].expand(-1, -1, z.shape[-1]))
    encoded = online.blocks_forward(torch.cat([z[:, :1], visible], dim=1))
    pred = nets.decoder(encoded, restore)
    loss = mae_loss(pred, patchify(xn, online.patch_size), mask, cfg.mae.norm_pix)
    return StepOutput(loss, {"loss": loss.detach(), "mae": loss.detach()})


STEPS = {"bolt": token_byol_step, "token_byol": token_byol_step, "byol": pixel_byol_step, "mae": mae_step}


def ssl_step(nets: PretrainNets, x: torch.Tensor, cfg: SSLConfig, g: torch.Generator) -> StepOutput:
    """The training step of ``cfg.method`` (images ``x`` in [0, 1], generator ``g`` on their device)."""
    return STEPS[cfg.method](nets, x, cfg, g)


@contextlib.contextmanager
def frozen_batch_statistics(nets: nn.Module) -> Iterator[None]:
    """Train-mode forward (BatchNorm on batch statistics, as in the training step) that leaves the running
    statistics untouched (momentum 0) and restores the modules' modes afterwards."""
    modes = {m: m.training for m in nets.modules()}
    norms = [m for m in nets.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    nets.train()
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode


@torch.no_grad()
def pretext_diagnostics(
    nets: PretrainNets, x: torch.Tensor, cfg: SSLConfig, g: torch.Generator
) -> dict[str, float]:
    """The step's logs on held-out images with fresh strengths and no image augmentation (spec §2.4), BatchNorm
    on batch statistics as in training (no state changes)."""
    held_out = SSLConfig(cfg.method, cfg.perturb, cfg.rank, cfg.mae, cfg.token_source, "none")
    with frozen_batch_statistics(nets):
        out = ssl_step(nets, x, held_out, g)
    return {k: float(v) for k, v in out.logs.items()}
