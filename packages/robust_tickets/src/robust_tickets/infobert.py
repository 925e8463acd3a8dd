"""InfoBERT regularisers (Wang et al., "InfoBERT: Improving Robustness of Language Models from an Information
Theoretic Perspective", ICLR 2021) on top of the FreeLB inner loop of :mod:`robust_tickets.losses`.

InfoBERT maximises (paper section 3, final objective)

    I(Y; T)  -  n beta sum_i I(X_i; T_i)  +  alpha sum_j I(T_{k_j}; Z)

* ``I(Y; T)`` is lower-bounded by the negative task cross entropy (the FreeLB adversarial loss here);
* the **information-bottleneck** term uses the local bound of Theorem 3.1, I(X; T) <= n sum_i I(X_i; T_i), with
  each I(X_i; T_i) upper-bounded by the (sampled) CLUB estimator of Cheng et al. (2020):
  E_p(x,t)[log q(t|x)] - E_p(x)p(t)[log q(t|x)]  (:func:`club_upper_bound`);
* the **anchored-feature** term maximises the InfoNCE lower bound (van den Oord et al. 2018) of the MI between
  the "robust and useful" local features T_{k_j} and the global sentence feature Z (:func:`info_nce_lower_bound`).
  The anchored tokens are those whose FreeLB perturbation gradient norm ranks in the [cl, ch) quantile band of
  their sentence (:func:`select_anchored_tokens`): small-gradient tokens are not useful, large-gradient ones not
  robust.

Variables (as in the official code ``AI-secure/InfoBERT``, ``local_robust_trainer.py``): X_i is the (perturbed)
word embedding of token i, T_i the embedding-layer output of token i (``hidden_states[0]``), Z the last layer's
[CLS] vector. Padding tokens are excluded everywhere. The module docstring of :mod:`robust_tickets.module` and the
package README list where the official code differs from the paper.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from robust_tickets.losses import ascent_step, freelb_start, word_embeddings

Backward = Callable[..., None]  # loss -> None; called with retain_graph=True when the anchored term follows

CLUB_MODES = ("learned", "official")


# ------------------------------------------------------------------------------------------- CLUB (I(X_i;T_i))
class GaussianClubHead(nn.Module):
    """Variational q_theta(t|x) = N(mu(x), diag exp(logvar(x))) of the CLUB upper bound (Cheng et al. 2020,
    used by InfoBERT for I(X_i; T_i)). mu and logvar are 2-layer MLPs (logvar through tanh), trained jointly with
    the encoder by maximising the log-likelihood of the observed (x_i, t_i) pairs (:meth:`nll`)."""

    def __init__(self, x_dim: int, t_dim: int, hidden: int | None = None) -> None:
        super().__init__()
        h = hidden or t_dim
        self.mu = nn.Sequential(nn.Linear(x_dim, h), nn.ReLU(), nn.Linear(h, t_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, h), nn.ReLU(), nn.Linear(h, t_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(x), self.logvar(x)

    def nll(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean negative Gaussian log-likelihood -log q(t|x) (up to the constant), per sample summed over dims."""
        mu, logvar = self(x)
        return 0.5 * (((t - mu) ** 2) / logvar.exp() + logvar).sum(-1).mean()


def club_upper_bound(
    log_q_pos: torch.Tensor,
    log_q_neg: torch.Tensor,
) -> torch.Tensor:
    """Sampled CLUB bound: mean_i [log q(t_i|x_i) - log q(t_{pi(i)}|x_i)] for negatives t_{pi(i)} drawn from the
    batch marginal (CLUB eq. "vCLUB-S"; InfoBERT's estimator of I(X_i; T_i))."""
    return (log_q_pos - log_q_neg).mean()


def gaussian_log_q(mu: torch.Tensor, logvar: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log N(t; mu, diag exp(logvar)) without the -d/2 log(2 pi) constant, summed over the last dim."""
    return -0.5 * ((((t - mu) ** 2) / logvar.exp()) + logvar).sum(-1)


def information_bottleneck(
    x: torch.Tensor,
    t: torch.Tensor,
    mode: str = "learned",
    head: GaussianClubHead | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token I(X_i; T_i) upper bound on the N non-padding tokens of a batch (``x``, ``t``: [N, d]).

    ``learned`` (paper): sampled CLUB with the learned Gaussian ``head``; the bound's gradient reaches the encoder
    only (the head's parameters are detached there), and the head is trained by the returned NLL on detached
    features. ``official`` (``AI-secure/InfoBERT`` ``CLUBv2``, its default ``version 6``): q(t|x) = N(t_i, I)
    centred on the observed feature, so the bound is mean_i ||t_i - t_{pi(i)}||^2 / 2 (no parameters, NLL None).
    Negatives pi(i) are uniform with replacement (as the official ``torch.randint``).
    """
    n = t.shape[0]
    perm = torch.randint(n, (n,), generator=generator, device=t.device)
    if mode == "official":
        return 0.5 * ((t - t[perm]) ** 2).sum(-1).mean(), None
    if mode != "learned" or head is None:
        raise ValueError(f"information_bottleneck mode must be one of {CLUB_MODES} (learned needs a head)")
    frozen = {k: v.detach() for k, v in head.named_parameters()}
    mu, logvar = functional_call(head, frozen, (x,))
    bound = club_upper_bound(gaussian_log_q(mu, logvar, t), gaussian_log_q(mu, logvar, t[perm]))
    return bound, head.nll(x.detach(), t.detach())


# ---------------------------------------------------------------------------------------- InfoNCE (I(T_kj;Z))
class InfoNCECritic(nn.Module):
    """Critic g_omega(t, z) of the InfoNCE bound: MLP on [t; z] (official: 300 hidden units, softplus output)."""

    def __init__(self, t_dim: int, z_dim: int, hidden: int = 300) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(t_dim + z_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Softplus()
        )

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Score matrix S[i, j] = g(t_j, z_i) for ``t``, ``z`` of shape [N, d]: row i contrasts z_i's own local
        feature t_i against the other t_j of the chunk."""
        n = t.shape[0]
        pairs = torch.cat([t.unsqueeze(0).expand(n, n, -1), z.unsqueeze(1).expand(n, n, -1)], dim=-1)
        return self.net(pairs).squeeze(-1)


def info_nce_lower_bound(scores: torch.Tensor) -> torch.Tensor:
    """InfoNCE bound from a score matrix S[i, j] = g(t_j, z_i) with positives on the diagonal:
    mean_i [S_ii - log (1/N) sum_j exp S_ij]  (<= log N; van den Oord et al. 2018)."""
    n = scores.shape[0]
    return scores.diagonal().mean() - (torch.logsumexp(scores, dim=1) - math.log(n)).mean()


def anchored_feature_bound(
    critic: InfoNCECritic,
    local: torch.Tensor,
    global_: torch.Tensor,
    chunk: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mean InfoNCE bound over shuffled chunks of ``chunk`` (local T_kj, global Z) pairs (official: the pairs of
    a batch are shuffled and cut into chunks of the training batch size; negatives are the chunk's other pairs)."""
    order = torch.randperm(local.shape[0], generator=generator, device=local.device)
    local, global_ = local[order], global_[order]
    bounds = [
        info_nce_lower_bound(critic(local[i : i + chunk], global_[i : i + chunk]))
        for i in range(0, local.shape[0], chunk)
    ]
    return torch.stack(bounds).mean()


def select_anchored_tokens(
    scores: torch.Tensor, attention_mask: torch.Tensor, cl: float = 0.5, ch: float = 0.9
) -> torch.Tensor:
    """Boolean [B, L] mask of the anchored tokens: per sentence of n non-padding tokens, sort the scores (here
    the perturbation-gradient norms) ascending and keep sorted positions ceil(n cl) .. ceil(n ch) - 1
    (official ``feature_ranking``; ties keep token order)."""
    if not 0.0 <= cl <= ch <= 1.0:
        raise ValueError(f"need 0 <= cl <= ch <= 1, got cl={cl}, ch={ch}")
    valid = attention_mask.bool()
    keyed = scores.masked_fill(~valid, float("inf"))
    order = torch.sort(keyed, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    n = valid.sum(1, keepdim=True).double()
    lo = torch.ceil(n * cl - 1e-9)  # 1e-9: 10 * 0.7 must give 7, not 8
    hi = torch.ceil(n * ch - 1e-9)
    return valid & (rank >= lo) & (rank < hi)


# --------------------------------------------------------------------------------------- FreeLB + InfoBERT
def infobert_objective(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    labels: torch.Tensor,
    backward: Backward,
    critic: InfoNCECritic | None,
    club_head: GaussianClubHead | None,
    alpha: float = 5e-3,
    beta: float = 5e-3,
    cl: float = 0.5,
    ch: float = 0.9,
    club_mode: str = "learned",
    steps: int = 2,
    eps0: float = 0.05,
    eta: float = 0.03,
    norm_type: str = "l2",
    max_norm: float = 0.0,
    embeds_with_grad: bool = True,
    generator: torch.Generator | None = None,
    token_type_ids: torch.Tensor | None = None,
) -> dict[str, float]:
    """FreeLB (K = ``steps`` accumulating passes, as :func:`robust_tickets.losses.freelb_objective`) with the two
    InfoBERT regularisers added to every pass, each divided by K (official ``_adv_training_step``):

    1. back-propagate [CE(f(emb + delta_k)) + beta IB_k] / K (IB: :func:`information_bottleneck` on the
       non-padding tokens, plus the CLUB head's NLL in ``learned`` mode);
    2. anchored tokens from the per-token norm of that backward's gradient on delta_k, then back-propagate
       -alpha I_NCE(T_kj; Z) / K (critic trained jointly by the same backward);
    3. ascent step on delta from the gradient of step 1 (as FreeLB).

    With alpha = beta = 0 nothing else is computed or drawn from ``generator``: the gradients equal FreeLB's.
    Returns the per-pass means {"loss" (CE), "ib", "nce"}.
    """
    if alpha > 0 and critic is None:
        raise ValueError("alpha > 0 needs the InfoNCE critic")
    emb, delta = freelb_start(model, input_ids, attention_mask, eps0, norm_type, embeds_with_grad, generator)
    valid = attention_mask.bool()
    out = {"loss": 0.0, "ib": 0.0, "nce": 0.0}
    need_hidden = alpha > 0 or beta > 0
    for k in range(steps):
        delta.requires_grad_(True)
        base = word_embeddings(model, input_ids, with_grad=True) if embeds_with_grad else emb
        x = base + delta
        kwargs = {"inputs_embeds": x, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if need_hidden:
            kwargs["output_hidden_states"] = True
        res = model(**kwargs)
        ce = F.cross_entropy(res.logits, labels)
        loss = ce / steps
        if beta > 0:
            t_local = res.hidden_states[0][valid]
            ib, nll = information_bottleneck(x[valid], t_local, club_mode, club_head, generator)
            loss = loss + beta * ib / steps
            if nll is not None:
                loss = loss + nll / steps
            out["ib"] += float(ib.detach()) / steps
        if alpha > 0:  # the anchored term back-propagates through the same forward graph
            backward(loss, retain_graph=True)
        else:
            backward(loss)
        out["loss"] += float(ce.detach()) / steps
        grad = delta.grad.detach().clone()
        if alpha > 0:
            anchored = select_anchored_tokens(grad.norm(dim=-1), attention_mask, cl, ch)
            rows = anchored.nonzero(as_tuple=True)[0]
            if rows.numel() > 0:
                local = res.hidden_states[0][anchored]
                global_ = res.hidden_states[-1][:, 0][rows]
                nce = anchored_feature_bound(critic, local, global_, len(labels), generator)
                backward(-alpha * nce / steps)
                out["nce"] += float(nce.detach()) / steps
        if k < steps - 1:
            delta = ascent_step(delta.detach(), grad, eta, attention_mask, norm_type, max_norm)
    return out
