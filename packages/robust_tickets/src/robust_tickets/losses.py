"""The paper's objectives as pure functions: L0 penalty (eq. 4), lambda schedule, adversarial inner loops
(eq. 6-8 PGD and the official FreeLB-style average), and ticket drawing (global ranking)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from paperlab_core.errors import ConfigError
from robust_tickets.hard_concrete import prob_nonzero

Backward = Callable[[torch.Tensor], None]


# ----------------------------------------------------------------------------------------------- L0 (eq. 4)
def l0_penalty(
    log_alpha: torch.Tensor, sizes: Sequence[int] | None = None, mean_of_means: bool = False
) -> torch.Tensor:
    """Smoothed L0 R(m) = (1/|m|) sum_i sigmoid(log alpha_i - beta log(-gamma/zeta)) (paper eq. 4).

    ``mean_of_means=True`` (official code ``compute_total_regularizer``) averages the per-matrix means, given
    the per-matrix entry counts ``sizes`` of the flat ``log_alpha``.
    """
    p = prob_nonzero(log_alpha)
    if not mean_of_means:
        return p.mean()
    if sizes is None:
        raise ValueError("mean_of_means needs the per-matrix sizes")
    return torch.stack([chunk.mean() for chunk in torch.split(p, list(sizes))]).mean()


# ------------------------------------------------------------------------------------- lambda schedule
def lambda_at(
    step: int,
    total_steps: int,
    amp: float = 0.5,
    lambda_init: float = 0.0,
    lambda_final: float = 1.0,
    start_frac: float = 0.1,
    warm_frac: float = 0.3,
    kind: str = "ramp",
    counter_per_batch: int = 1,
) -> float:
    """lambda_t = amp (l_init + (l_final - l_init) clip((c_t - f_s T)/(f_w T), 0, 1)), c_t = step * counter.

    ``kind='constant'`` gives amp * l_final throughout (the paper's plain "lambda in [0.1, 1]").
    ``counter_per_batch=3`` reproduces the official ``processed += len(model_inputs)`` quirk.
    """
    if kind == "constant":
        return amp * lambda_final
    if kind != "ramp":
        raise ConfigError(f"lambda schedule must be 'ramp' or 'constant', got {kind!r}")
    total = max(total_steps, 1)
    progress = (step * counter_per_batch - start_frac * total) / max(warm_frac * total, 1e-12)
    return amp * (lambda_init + (lambda_final - lambda_init) * min(max(progress, 0.0), 1.0))


def linear_warmup_decay(step: int, total_steps: int, warmup_frac: float = 0.1) -> float:
    """LR multiplier: linear warm-up over ``warmup_frac`` of the steps, then linear decay to 0."""
    warm = int(math.ceil(warmup_frac * total_steps))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total_steps - step) / max(1, total_steps - warm))


# ------------------------------------------------------------------------------ adversarial perturbation
def init_delta(
    attention_mask: torch.Tensor,
    hidden: int,
    eps0: float,
    norm_type: str = "l2",
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """delta_0 = U(-1,1) * mask scaled per example by eps0/sqrt(L_i d) (L2) or U(-eps0, eps0) * mask (linf).

    Padding positions are 0; E||delta_0||_F = eps0/sqrt(3) in L2 mode (derived).
    """
    b, length = attention_mask.shape
    mask = attention_mask.to(dtype).unsqueeze(-1)
    u = torch.rand(b, length, hidden, generator=generator, dtype=dtype, device=attention_mask.device) * 2 - 1
    delta = u * mask
    if eps0 == 0:
        return torch.zeros_like(delta)
    if norm_type == "l2":
        n_tok = attention_mask.to(dtype).sum(1).clamp_min(1)
        return delta * (eps0 / torch.sqrt(n_tok * hidden)).view(b, 1, 1)
    if norm_type == "linf":
        return delta * eps0
    raise ConfigError(f"adv_norm_type must be 'l2' or 'linf', got {norm_type!r}")


def ascent_step(
    delta: torch.Tensor,
    grad: torch.Tensor,
    eta: float,
    attention_mask: torch.Tensor,
    norm_type: str = "l2",
    max_norm: float = 0.0,
) -> torch.Tensor:
    """delta + eta g/||g|| per example (Frobenius over L x d, or inf-norm), then the optional projection."""
    mask = attention_mask.to(grad.dtype).unsqueeze(-1)
    grad = grad * mask
    b = grad.shape[0]
    flat = grad.reshape(b, -1)
    if norm_type == "l2":
        norm = flat.norm(dim=1)
    elif norm_type == "linf":
        norm = flat.abs().amax(dim=1)
    else:
        raise ConfigError(f"adv_norm_type must be 'l2' or 'linf', got {norm_type!r}")
    step = grad / norm.clamp_min(1e-12).view(b, 1, 1)
    delta = (delta + eta * step) * mask
    if max_norm > 0:
        delta = project(delta, max_norm, norm_type)
    return delta


def project(delta: torch.Tensor, max_norm: float, norm_type: str = "l2") -> torch.Tensor:
    """Projection onto the per-example ball ||delta||_F <= max_norm (or the inf-ball)."""
    if norm_type == "linf":
        return delta.clamp(-max_norm, max_norm)
    b = delta.shape[0]
    norm = delta.reshape(b, -1).norm(dim=1).clamp_min(1e-12)
    scale = torch.clamp(max_norm / norm, max=1.0)
    return delta * scale.view(b, 1, 1)


def logits_from_embeds(
    model: nn.Module,
    embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Call the classifier with ``inputs_embeds`` (position/type embeddings and LayerNorm come after delta)."""
    kwargs = {"inputs_embeds": embeds, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    return model(**kwargs).logits


def word_embeddings(model: nn.Module, input_ids: torch.Tensor, with_grad: bool = False) -> torch.Tensor:
    """The word-embedding output, computed once per step under ``no_grad`` unless ``with_grad``."""
    emb_layer = model.get_input_embeddings()
    if with_grad:
        return emb_layer(input_ids)
    with torch.no_grad():
        return emb_layer(input_ids)


def pgd_ascent(
    model: nn.Module,
    emb: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    n_ascent: int,
    eps0: float = 0.05,
    eta: float = 0.03,
    norm_type: str = "l2",
    max_norm: float = 0.0,
    generator: torch.Generator | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """delta_{k+1} = Pi(delta_k + eta g/||g||) from delta_0 (eq. 7); gradients are taken w.r.t. delta only
    (``torch.autograd.grad``), so no parameter receives a gradient. Returns the detached delta.
    ``token_type_ids``: segment ids of sentence pairs (delta covers the word embeddings of both segments)."""
    delta = init_delta(attention_mask, emb.shape[-1], eps0, norm_type, generator, emb.dtype)
    for _ in range(n_ascent):
        delta.requires_grad_(True)
        with torch.enable_grad():
            logits = logits_from_embeds(model, emb.detach() + delta, attention_mask, token_type_ids)
            loss = F.cross_entropy(logits, labels)
            (grad,) = torch.autograd.grad(loss, delta)
        delta = ascent_step(delta.detach(), grad, eta, attention_mask, norm_type, max_norm)
    return delta.detach()


def pgd_objective(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    backward: Backward,
    steps: int = 2,
    eps0: float = 0.05,
    eta: float = 0.03,
    norm_type: str = "l2",
    max_norm: float = 0.0,
    steps_are_ascent_steps: bool = False,
    embeds_with_grad: bool = False,
    generator: torch.Generator | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> float:
    """Paper mode (eq. 7-8): ascent steps compute only delta-gradients, the final pass is back-propagated.

    ``steps`` counts forward/backward passes (s - 1 ascent steps + 1 training pass); with
    ``steps_are_ascent_steps`` there are ``steps`` ascent steps plus the training pass.
    Returns the loss at the final delta (``backward`` is called on it once).
    """
    emb = word_embeddings(model, input_ids, with_grad=embeds_with_grad)
    n_ascent = steps if steps_are_ascent_steps else max(steps - 1, 0)
    delta = pgd_ascent(
        model,
        emb,
        attention_mask,
        labels,
        n_ascent,
        eps0,
        eta,
        norm_type,
        max_norm,
        generator,
        token_type_ids,
    )
    loss = F.cross_entropy(logits_from_embeds(model, emb + delta, attention_mask, token_type_ids), labels)
    backward(loss)
    return float(loss.detach())


def freelb_start(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    eps0: float,
    norm_type: str,
    embeds_with_grad: bool,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The word embeddings computed once under ``no_grad`` (None when every pass recomputes them with
    gradients) and delta_0 of a FreeLB-style loop (shared by FreeLB and InfoBERT)."""
    emb = None if embeds_with_grad else word_embeddings(model, input_ids)
    weight = model.get_input_embeddings().weight
    delta = init_delta(attention_mask, weight.shape[1], eps0, norm_type, generator, weight.dtype)
    return emb, delta


def freelb_objective(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    backward: Backward,
    steps: int = 2,
    eps0: float = 0.05,
    eta: float = 0.03,
    norm_type: str = "l2",
    max_norm: float = 0.0,
    embeds_with_grad: bool = False,
    generator: torch.Generator | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> float:
    """Official mode (FreeLB): K passes, each back-propagates CE(f(emb + delta_k))/K into the trainable
    parameters (accumulating), and passes 0..K-2 take an ascent step. The accumulated gradient is the mean of
    the gradients at delta_0..delta_{K-1}. Returns the mean loss over the K passes."""
    emb, delta = freelb_start(model, input_ids, attention_mask, eps0, norm_type, embeds_with_grad, generator)
    total = 0.0
    for k in range(steps):
        delta.requires_grad_(True)
        base = word_embeddings(model, input_ids, with_grad=True) if embeds_with_grad else emb
        logits = logits_from_embeds(model, base + delta, attention_mask, token_type_ids)
        loss = F.cross_entropy(logits, labels) / steps
        backward(loss)
        total += float(loss.detach())
        if k < steps - 1:
            delta = ascent_step(delta.detach(), delta.grad, eta, attention_mask, norm_type, max_norm)
    return total


def pgd_attack_delta(
    model: nn.Module,
    emb: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    eps: torch.Tensor,
    steps: int = 10,
    step_scale: float = 2.5,
    token_type_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Embedding-space PGD-L2 for evaluation: delta_0 = 0, ``steps`` steps of size step_scale*eps/steps,
    projection onto ||delta||_F <= eps per example (``eps`` has one entry per example)."""
    b = emb.shape[0]
    delta = torch.zeros_like(emb)
    eps_v = eps.view(b, 1, 1).to(emb.dtype)
    mask = attention_mask.to(emb.dtype).unsqueeze(-1)
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(
                logits_from_embeds(model, emb + delta, attention_mask, token_type_ids),
                labels,
                reduction="sum",
            )
            (grad,) = torch.autograd.grad(loss, delta)
        grad = grad * mask
        gn = grad.reshape(b, -1).norm(dim=1).clamp_min(1e-12).view(b, 1, 1)
        delta = delta.detach() + step_scale * eps_v / steps * grad / gn
        dn = delta.reshape(b, -1).norm(dim=1).clamp_min(1e-12).view(b, 1, 1)
        delta = delta * torch.clamp(eps_v / dn, max=1.0)
    return delta.detach()


# ------------------------------------------------------------------------------------------- ticket draw
def check_sparsity(sparsity: float) -> float:
    if not (isinstance(sparsity, (int, float)) and 0.0 <= float(sparsity) < 1.0):
        raise ConfigError(f"sparsity must lie in [0, 1), got {sparsity!r}")
    return float(sparsity)


def draw_global(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Binary keep-mask pruning the globally lowest ``round(sparsity * n)`` scores (ties: lower flat index
    first). Ranking by log alpha equals ranking by sigmoid(log alpha) but never saturates in float."""
    sparsity = check_sparsity(sparsity)
    flat = scores.detach().flatten().float()
    n_prune = int(round(sparsity * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if n_prune:
        order = torch.sort(flat.cpu(), stable=True).indices
        keep[order[:n_prune]] = False
    return keep


def magnitude_scores(weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """|W| of every masked matrix, concatenated in mask order (one-shot magnitude / IMP ranking)."""
    return torch.cat([w.detach().abs().flatten().float().cpu() for w in weights])


def imp_schedule(target: float, rate: float = 0.1, rounds: int = 0) -> list[float]:
    """Cumulative sparsity after each IMP round (Chen et al. 2020, spec 2.9): round r prunes ``rate`` of the
    remaining weights, i.e. reaches 1 - (1 - rate)^r, and the last round prunes exactly to ``target``.

    ``rounds=0`` takes as many rounds as the rate needs; ``rounds=1`` is the one-shot magnitude ticket."""
    target = check_sparsity(target)
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"imp_rate must be in (0, 1), got {rate}")
    if rounds < 0:
        raise ConfigError(f"imp_rounds must be >= 0 (0 = as many as imp_rate needs), got {rounds}")
    needed = max(1, math.ceil(math.log1p(-target) / math.log1p(-rate) - 1e-9)) if target > 0 else 1
    if rounds == 0:
        rounds = needed
    elif rounds > needed:
        raise ConfigError(
            f"imp_rounds={rounds} is too many: pruning {rate:.0%} of the remaining weights per round reaches "
            f"sparsity {target} after {needed} round(s)"
        )
    return [1.0 - (1.0 - rate) ** r for r in range(1, rounds)] + [target]


def random_scores(n: int, seed: int) -> torch.Tensor:
    """Uniform random scores (random-pruning ticket), drawn on the CPU (the same ticket on every device; the
    caller moves them) with a generator created on the CPU."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.rand(n, generator=gen, device="cpu")
