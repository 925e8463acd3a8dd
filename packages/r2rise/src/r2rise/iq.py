"""``iq_mlp``: offline inverse soft-Q imitation (IQ-Learn, Garg et al., NeurIPS 2021) as a batched ensemble.

A learner of another family than behaviour cloning for Q3: it fits a soft Q-function to the demonstrations'
**transitions** (s, a, s') instead of a classifier to their labels. With V(s) = log Σ_a exp Q(s, a) (temperature 1),
the implied reward y = Q(s, a) − γ V(s'), and the χ² divergence (φ(y) = y − y²/(4α)), the offline objective of
IQ-Learn with expert-state value telescoping is, per model m over its kept transitions,

    L_m = mean_f [ −y_f + (V(s_f) − γ V(s'_f)) + y_f² / (4α) ]  =  mean_f [ V(s_f) − Q(s_f, a_f) + y_f² / (4α) ]

(the minimisation form of IQ-Learn's maximisation; the last identity is exact). The first part equals the
cross-entropy of the Boltzmann policy softmax(Q), the second regularises the implied reward through the dynamics
(it needs s'), so the learner shares BC's label term and adds a Bellman-consistency term BC does not have. The policy
is greedy in Q (ties → lowest action). γ = 0.99, α = 0.5 (IQ-Learn's χ² setting). A frame whose successor is not a
valid frame of the same demonstration (the last frame) has no transition and is not used. The Q-network has the
``bc_mlp`` architecture and initialisation (member m starts from exactly ``bc_mlp`` member m), so on the same masks
the two learners differ only in the loss. Models are independent: per-model weighted means, summed; Adam is
elementwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from paperlab_core.errors import ConfigError
from r2rise.learners import Ensemble, Normaliser, ensemble_logits, gather_kept, init_member

GAMMA = 0.99
CHI2_ALPHA = 0.5


def transitions(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the valid frames in flat order (as ``Demonstrations.frames``): the flat index of each frame's successor
    and whether it has one (the next frame of the same demonstration is valid), both (F,)."""
    num_demos, length = valid.shape
    has_next = np.zeros_like(valid, dtype=bool)
    has_next[:, :-1] = valid[:, :-1] & valid[:, 1:]
    flat = np.flatnonzero(valid.reshape(-1))
    return np.minimum(flat + 1, num_demos * length - 1), has_next.reshape(-1)[flat]


def iq_losses(
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    x_next: torch.Tensor,
    y: torch.Tensor,
    weights: torch.Tensor,
    gamma: float = GAMMA,
    alpha: float = CHI2_ALPHA,
) -> torch.Tensor:
    """Per-model IQ-Learn χ² losses (M,) (module docstring) for frames ``x``, successors ``x_next`` ((F, d) shared by
    all models or (M, F, d) per model), actions ``y`` ((F,) or (M, F)) and transition weights (M, F) ∈ {0, 1}."""
    q = ensemble_logits("bc_mlp", params, x)  # (M, F, A)
    v = torch.logsumexp(q, dim=-1)
    v_next = torch.logsumexp(ensemble_logits("bc_mlp", params, x_next), dim=-1)
    q_sa = q.gather(-1, y.expand(q.shape[0], -1)[..., None]).squeeze(-1)
    reward = q_sa - gamma * v_next
    per_frame = v - q_sa + reward.square() / (4.0 * alpha)
    return (weights * per_frame).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def fit_iq_ensemble(
    obs: np.ndarray,
    next_obs: np.ndarray,
    has_next: np.ndarray,
    actions: np.ndarray,
    weights: np.ndarray,
    num_actions: int,
    hidden: int = 32,
    lr: float = 1e-2,
    steps: int = 200,
    seed: int = 0,
    members: Sequence[int] | None = None,
    normaliser: Normaliser | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Ensemble:
    """Train M = len(weights) Q-networks with full-batch Adam on Σ_m L_m; returns greedy-in-Q policies.

    ``obs``/``next_obs`` (F, d) are the valid frames and their successors, ``has_next`` (F,) marks frames that have
    one, ``weights`` (M, F) ∈ {0, 1} the kept frames of each model; member m is initialised like ``bc_mlp`` member
    ``members[m]``."""
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != obs.shape[0]:
        raise ValueError(f"weights must have shape (M, F={obs.shape[0]}), got {weights.shape}")
    members = list(range(len(weights))) if members is None else [int(m) for m in members]
    used = weights * np.asarray(has_next, dtype=weights.dtype)[None, :]
    empty = np.flatnonzero(used.sum(axis=1) == 0)
    if empty.size:
        raise ConfigError(
            f"model(s) {[members[i] for i in empty[:5]]} keep no transition (s, a, s'): cannot fit iq_mlp"
        )
    device = torch.device(device)
    normaliser = normaliser or Normaliser.fit(obs)
    flat = obs.reshape(obs.shape[0], -1)
    x_all = torch.as_tensor(normaliser(flat), dtype=dtype, device=device)
    x_next_all = torch.as_tensor(normaliser(next_obs.reshape(flat.shape)), dtype=dtype, device=device)
    y_all = torch.as_tensor(actions, dtype=torch.long, device=device)
    # each model trains on a gathered copy of only its kept transitions (padding has weight 0), as ``fit_ensemble``
    order, counts = gather_kept(used)
    width = int(counts.max())
    index = torch.as_tensor(order[:, :width], device=device)
    w = (torch.arange(width, device=device)[None, :] < torch.as_tensor(counts, device=device)[:, None]).to(
        dtype
    )
    x, x_next, y = x_all[index], x_next_all[index], y_all[index]
    inits = [init_member("bc_mlp", flat.shape[1], num_actions, hidden, seed, m) for m in members]
    params = {k: torch.stack([p[k] for p in inits]).to(device, dtype) for k in inits[0]}
    for value in params.values():
        value.requires_grad_(True)
    optimiser = torch.optim.Adam(list(params.values()), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        iq_losses(params, x, x_next, y, w).sum().backward()
        optimiser.step()
    return Ensemble("bc_mlp", {k: v.detach() for k, v in params.items()}, normaliser)
