"""Token-space views (spec §2.3, ours except "same tokens, different perturbation", which is the paper's).

Every operator acts on patch-embedding tokens ``t ∈ R^{B×N×D}`` *before* the positional embedding, takes a
per-sample strength ``s ∈ [0, 1]`` and is exactly the identity at ``s = 0``. A view's randomness is drawn once as a
:class:`Realisation` and applied to both branches' tokens, so at initialisation (ξ = θ) the online and target
inputs of a view are identical. Everything is vectorised over the batch and drawn on the tokens' device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from paperlab_core.errors import ConfigError

OPS = ("mask", "noise", "shuffle", "mix")
MASK_VALUES = ("zero", "learned")


@dataclass
class PerturbConfig:
    """The perturbation family (ours): ops applied in list order with one strength per view and sample.

    ``alpha_*`` scale the strength into a fraction of tokens (mask, shuffle, mix) or a noise level (σ = α·s·std).
    """

    ops: list[str] = field(default_factory=lambda: ["mask", "noise", "shuffle"])
    s_max: float = 0.8
    alpha_mask: float = 0.5
    alpha_noise: float = 1.0
    alpha_shuffle: float = 0.5
    alpha_mix: float = 0.5
    mask_value: str = "zero"

    def __post_init__(self) -> None:
        unknown = [op for op in self.ops if op not in OPS]
        if unknown:
            raise ConfigError(f"perturb.ops: unknown {unknown} (expected items of {', '.join(OPS)})")
        if self.mask_value not in MASK_VALUES:
            raise ConfigError(
                f"perturb.mask_value {self.mask_value!r}: expected one of {', '.join(MASK_VALUES)}"
            )
        if not 0.0 <= self.s_max <= 1.0:
            raise ConfigError(f"perturb.s_max must lie in [0, 1], got {self.s_max}")


@dataclass
class Realisation:
    """One view's random draw, shared by the online and target branch.

    ``strength`` (B,); ``mask`` (B, N) bool; ``noise`` (B, N, D) standard normal; ``source`` (B, N) long: the
    position whose token lands at each position after shuffling; ``mix`` (B, N) bool with ``partner`` (B,).
    """

    strength: torch.Tensor
    mask: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    source: torch.Tensor | None = None
    mix: torch.Tensor | None = None
    partner: torch.Tensor | None = None


def make_generator(device: torch.device | str, seed: int, step: int = 0, rank: int = 0) -> torch.Generator:
    """A generator on ``device`` seeded from (seed, global step, rank): reproducible runs and tests."""
    mixed = ((int(seed) * 1_000_003 + int(step)) * 1_009 + int(rank)) % (2**63 - 1)
    return torch.Generator(device=torch.device(device)).manual_seed(mixed)


def sample_strengths(
    batch: int, s_max: float, generator: torch.Generator, device: torch.device | str
) -> torch.Tensor:
    """s ~ U(0, s_max) per sample (spec §2.3: strength = difficulty)."""
    return torch.rand(batch, generator=generator, device=device) * s_max


def count_tokens(strength: torch.Tensor, alpha: float, n_tokens: int) -> torch.Tensor:
    """round(α·s·N) per sample, clipped to [0, N] (half-to-even rounding, like Python's ``round``)."""
    return torch.round(alpha * strength * n_tokens).long().clamp(0, n_tokens)


def _random_order(
    batch: int, n_tokens: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(B, N): each row a uniformly random permutation of the positions (row r = the rank-r position)."""
    return torch.rand(batch, n_tokens, generator=generator, device=device).argsort(dim=1)


def select_positions(count: torch.Tensor, n_tokens: int, generator: torch.Generator) -> torch.Tensor:
    """(B, N) bool with exactly ``count[b]`` positions chosen uniformly without replacement in row b."""
    order = _random_order(count.shape[0], n_tokens, generator, count.device)
    rank = order.argsort(dim=1)
    return rank < count[:, None]


def cyclic_derangement(count: torch.Tensor, n_tokens: int, generator: torch.Generator) -> torch.Tensor:
    """(B, N) source indices: ``count[b]`` random positions pass their tokens round a random cycle.

    With K ≥ 2 every chosen position receives another chosen position's token (a derangement); K < 2 is the
    identity.
    """
    batch, device = count.shape[0], count.device
    order = _random_order(batch, n_tokens, generator, device)
    ranks = torch.arange(n_tokens, device=device).expand(batch, n_tokens)
    k = count[:, None]
    src_rank = torch.where(ranks < k, (ranks + 1) % k.clamp(min=1), ranks)
    source = torch.arange(n_tokens, device=device).repeat(batch, 1)
    return source.scatter(1, order, order.gather(1, src_rank))


def draw_realisation(
    strength: torch.Tensor, n_tokens: int, dim: int, cfg: PerturbConfig, generator: torch.Generator
) -> Realisation:
    """Draw every op's randomness for one view (in the fixed order of ``cfg.ops``)."""
    batch, device = strength.shape[0], strength.device
    real = Realisation(strength=strength)
    for op in cfg.ops:
        if op == "mask":
            real.mask = select_positions(
                count_tokens(strength, cfg.alpha_mask, n_tokens), n_tokens, generator
            )
        elif op == "noise":
            real.noise = torch.randn(batch, n_tokens, dim, generator=generator, device=device)
        elif op == "shuffle":
            real.source = cyclic_derangement(
                count_tokens(strength, cfg.alpha_shuffle, n_tokens), n_tokens, generator
            )
        elif op == "mix":
            if batch < 2:
                raise ValueError("perturb op 'mix' needs a batch of at least 2 images (a partner per sample)")
            real.mix = select_positions(count_tokens(strength, cfg.alpha_mix, n_tokens), n_tokens, generator)
            real.partner = (torch.arange(batch, device=device) + 1) % batch
    return real


def apply_mask(tokens: torch.Tensor, mask: torch.Tensor, value: torch.Tensor | None = None) -> torch.Tensor:
    """Masked tokens become ``value`` (a learned (D,) token) or zero."""
    fill = torch.zeros_like(tokens) if value is None else value.to(tokens.dtype).expand_as(tokens)
    return torch.where(mask[..., None], fill, tokens)


def apply_noise(
    tokens: torch.Tensor, noise: torch.Tensor, strength: torch.Tensor, alpha: float
) -> torch.Tensor:
    """t + α·s·σ_t·ε with σ_t the (detached) std of the sample's N·D token entries."""
    sigma = tokens.detach().float().flatten(1).std(dim=1).to(tokens.dtype)
    return tokens + (alpha * strength.to(tokens.dtype) * sigma)[:, None, None] * noise.to(tokens.dtype)


def apply_shuffle(tokens: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    return tokens.gather(1, source[..., None].expand_as(tokens))


def apply_mix(tokens: torch.Tensor, mix: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """Chosen positions take the partner image's token at the same position (partner = (b + 1) mod B)."""
    return torch.where(mix[..., None], tokens[partner], tokens)


def apply_realisation(
    tokens: torch.Tensor, real: Realisation, cfg: PerturbConfig, mask_token: torch.Tensor | None = None
) -> torch.Tensor:
    """P_{s,R}(t): the ops of ``cfg`` in list order, all with the view's strength."""
    out = tokens
    for op in cfg.ops:
        if op == "mask":
            out = apply_mask(out, real.mask, mask_token if cfg.mask_value == "learned" else None)
        elif op == "noise":
            out = apply_noise(out, real.noise, real.strength, cfg.alpha_noise)
        elif op == "shuffle":
            out = apply_shuffle(out, real.source)
        elif op == "mix":
            out = apply_mix(out, real.mix, real.partner)
    return out


def perturb_pair(
    tokens: Sequence[torch.Tensor],
    s1: torch.Tensor,
    s2: torch.Tensor,
    cfg: PerturbConfig,
    generator: torch.Generator,
    mask_token: Sequence[torch.Tensor | None] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Views 1 and 2 of every branch's tokens with shared realisations R1, R2.

    ``tokens`` holds one (B, N, D) tensor per branch (online first); returns ``([v1 per branch], [v2 per
    branch])``.
    """
    _, n_tokens, dim = tokens[0].shape
    real1 = draw_realisation(s1, n_tokens, dim, cfg, generator)
    real2 = draw_realisation(s2, n_tokens, dim, cfg, generator)
    masks = list(mask_token) if mask_token is not None else [None] * len(tokens)
    view1 = [apply_realisation(t, real1, cfg, m) for t, m in zip(tokens, masks, strict=True)]
    view2 = [apply_realisation(t, real2, cfg, m) for t, m in zip(tokens, masks, strict=True)]
    return view1, view2
