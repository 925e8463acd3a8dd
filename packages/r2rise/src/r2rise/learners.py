"""Imitation learners trained as batched ensembles (spec §2.5).

``bc_mlp`` (obs → h tanh → A logits) and ``bc_linear`` (multinomial logistic regression) keep every parameter with a
leading model axis and compute all models' logits with ``einsum`` over the shared frame matrix X (F × d_obs). Model m
is trained on the frames with weight 1 in row m of W ∈ {0,1}^{M×F} with

    loss_m = Σ_f W_mf · CE_mf / max(1, Σ_f W_mf),        total = Σ_m loss_m

so each model's gradient equals its standalone gradient; Adam is elementwise, so one optimiser over the stacked
parameters gives exactly M independent full-batch Adam runs. Model m is initialised from a generator seeded by
(seed, m) with ``nn.Linear``'s distribution U(±1/√fan_in), so ``member_module`` builds the same model as a plain
``nn.Module`` (the sequential reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LEARNERS = ("bc_mlp", "bc_linear")


def member_generator(seed: int, member: int) -> torch.Generator:
    """The generator that initialises ensemble member ``member`` (independent of chunking)."""
    state = np.random.SeedSequence([int(seed), int(member)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator) -> torch.Tensor:
    bound = 1.0 / np.sqrt(fan_in)
    return (torch.rand(shape, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * bound


def init_member(learner: str, obs_dim: int, num_actions: int, hidden: int, seed: int, member: int) -> dict:
    """Parameters of one member in einsum layout (W: in × out), float64."""
    gen = member_generator(seed, member)
    if learner == "bc_mlp":
        return {
            "w1": _uniform((obs_dim, hidden), obs_dim, gen),
            "b1": _uniform((hidden,), obs_dim, gen),
            "w2": _uniform((hidden, num_actions), hidden, gen),
            "b2": _uniform((num_actions,), hidden, gen),
        }
    if learner == "bc_linear":
        return {
            "w": _uniform((obs_dim, num_actions), obs_dim, gen),
            "b": _uniform((num_actions,), obs_dim, gen),
        }
    raise ValueError(f"unknown learner {learner!r} (choose from {', '.join(LEARNERS)})")


def ensemble_logits(learner: str, params: dict[str, torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    """Logits of every model: ``obs`` (F, d) shared by all models or (M, F, d) per model → (M, F, A)."""
    shared = obs.dim() == 2
    if learner == "bc_mlp":
        pre = torch.einsum("fd,mdh->mfh" if shared else "mfd,mdh->mfh", obs, params["w1"])
        hidden = torch.tanh(pre + params["b1"][:, None, :])
        return torch.einsum("mfh,mha->mfa", hidden, params["w2"]) + params["b2"][:, None, :]
    if learner == "bc_linear":
        out = torch.einsum("fd,mda->mfa" if shared else "mfd,mda->mfa", obs, params["w"])
        return out + params["b"][:, None, :]
    raise ValueError(f"unknown learner {learner!r} (choose from {', '.join(LEARNERS)})")


def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-model loss_m = Σ_f W_mf · CE_mf / max(1, Σ_f W_mf): (M, F, A), (F,), (M, F) → (M,)."""
    logp = torch.log_softmax(logits, dim=-1)
    ce = -logp.gather(-1, labels.expand(logits.shape[0], -1)[..., None]).squeeze(-1)
    return (weights * ce).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


ENV_SCALES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "CartPole-v1": ((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 0.1, 1.0)),
    "MountainCar-v0": ((-0.3, 0.0), (0.9, 0.07)),
    "Acrobot-v1": ((0.0, 0.0, 0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0, 4 * np.pi, 9 * np.pi)),
}


@dataclass
class Normaliser:
    """Per-dimension observation scaling (input scale only, never labels): fixed per-env constants by default
    (``for_env``), or the mean/std of the full, unmasked demonstration set (``fit``)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, obs: np.ndarray) -> Normaliser:
        obs = obs.reshape(obs.shape[0], -1).astype(np.float64)
        std = obs.std(axis=0)
        return cls(obs.mean(axis=0), np.where(std > 1e-8, std, 1.0))

    @classmethod
    def for_env(cls, env_id: str, obs: np.ndarray) -> Normaliser:
        """Fixed per-env constants (``ENV_SCALES``: CartPole's operating range, MountainCar's and Acrobot's
        observation bounds as centre ± half-range); ``fit(obs)`` for other envs."""
        if env_id in ENV_SCALES:
            centre, scale = ENV_SCALES[env_id]
            return cls(np.asarray(centre, dtype=np.float64), np.asarray(scale, dtype=np.float64))
        return cls.fit(obs)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return (obs - self.mean) / self.std


@dataclass
class Ensemble:
    """M trained policies with stacked parameters; ``act`` maps (M, B, d) observations to greedy actions."""

    learner: str
    params: dict[str, torch.Tensor]
    normaliser: Normaliser

    @property
    def size(self) -> int:
        return int(next(iter(self.params.values())).shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.params.values())).dtype

    @torch.no_grad()
    def logits(self, obs: np.ndarray) -> torch.Tensor:
        device = next(iter(self.params.values())).device
        x = torch.as_tensor(
            self.normaliser(np.asarray(obs, dtype=np.float64)), dtype=self.dtype, device=device
        )
        return ensemble_logits(self.learner, self.params, x).cpu()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions (ties → lowest index): obs (M, B, d) → (M, B) int64."""
        return self.logits(obs).argmax(dim=-1).numpy()

    def select(self, index: int | list[int]) -> Ensemble:
        idx = [index] if isinstance(index, int) else list(index)
        return Ensemble(self.learner, {k: v[idx] for k, v in self.params.items()}, self.normaliser)


def fit_ensemble(
    obs: np.ndarray,
    actions: np.ndarray,
    weights: np.ndarray,
    num_actions: int,
    learner: str = "bc_mlp",
    hidden: int = 32,
    lr: float = 1e-2,
    steps: int = 200,
    seed: int = 0,
    members: Sequence[int] | None = None,
    normaliser: Normaliser | None = None,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Ensemble:
    """Train M = len(weights) models at once with full-batch Adam on Σ_m loss_m (see the module docstring).

    ``obs`` (F, d) and ``actions`` (F,) are the valid frames; ``weights`` (M, F) ∈ {0,1}. Row m is initialised
    with generator (seed, members[m]) (default members = 0..M−1), so chunked runs give the same models as one big
    run and paired experiments can share initialisations.
    """
    if learner not in LEARNERS:
        raise ValueError(f"unknown learner {learner!r} (choose from {', '.join(LEARNERS)})")
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != obs.shape[0]:
        raise ValueError(f"weights must have shape (M, F={obs.shape[0]}), got {weights.shape}")
    members = list(range(len(weights))) if members is None else [int(m) for m in members]
    if len(members) != len(weights):
        raise ValueError(f"members has {len(members)} entries for {len(weights)} weight rows")
    empty = np.flatnonzero(weights.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(
            f"model(s) {[members[i] for i in empty[:5]]} have no kept frame: cannot fit a policy on an "
            "empty dataset"
        )
    normaliser = normaliser or Normaliser.fit(obs)
    x = torch.as_tensor(normaliser(obs.reshape(obs.shape[0], -1)), dtype=dtype)
    y = torch.as_tensor(actions, dtype=torch.long)
    w = torch.as_tensor(weights, dtype=dtype)
    inits = [init_member(learner, x.shape[1], num_actions, hidden, seed, m) for m in members]
    params = {k: torch.stack([p[k] for p in inits]).to(device, dtype).requires_grad_(True) for k in inits[0]}
    state = {k: (torch.zeros_like(v), torch.zeros_like(v)) for k, v in params.items()}
    for step in range(1, steps + 1):
        loss = weighted_ce(ensemble_logits(learner, params, x), y, w).sum()
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for (key, value), grad in zip(params.items(), grads, strict=True):
                adam_update(value, grad, *state[key], step, lr)
    return Ensemble(learner, {k: v.detach() for k, v in params.items()}, normaliser)


def adam_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """One in-place Adam step (Kingma & Ba 2015, Algorithm 1), with the same operations as ``torch.optim.Adam``'s
    single-tensor path. Elementwise, so it never couples ensemble members (avoids importing the optimiser stack)."""
    beta1, beta2 = betas
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step_size = lr / (1 - beta1**step)
    denom = (exp_avg_sq.sqrt() / ((1 - beta2**step) ** 0.5)).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


class MLPPolicy(nn.Module):
    """One ``bc_mlp`` policy as a plain ``nn.Module`` (obs → hidden tanh → logits); also used by ``r2rise train``."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: int = 32) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden)
        self.fc2 = nn.Linear(hidden, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(obs)))


class LinearPolicy(nn.Module):
    """One ``bc_linear`` policy (multinomial logistic regression)."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: int = 32) -> None:
        super().__init__()
        self.fc = nn.Linear(obs_dim, num_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(obs)


POLICY_MODULES = {"bc_mlp": MLPPolicy, "bc_linear": LinearPolicy}


def member_module(
    learner: str, obs_dim: int, num_actions: int, hidden: int, seed: int, member: int, dtype: torch.dtype
) -> nn.Module:
    """A plain ``nn.Module`` with exactly ensemble member ``member``'s initial parameters."""
    p = init_member(learner, obs_dim, num_actions, hidden, seed, member)
    module = POLICY_MODULES[learner](obs_dim, num_actions, hidden).to(dtype)
    with torch.no_grad():
        if learner == "bc_mlp":
            module.fc1.weight.copy_(p["w1"].T)
            module.fc1.bias.copy_(p["b1"])
            module.fc2.weight.copy_(p["w2"].T)
            module.fc2.bias.copy_(p["b2"])
        else:
            module.fc.weight.copy_(p["w"].T)
            module.fc.bias.copy_(p["b"])
    return module


def module_params(learner: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's parameters in the ensemble's einsum layout, with a leading model axis of size 1."""
    if learner == "bc_mlp":
        raw = {
            "w1": module.fc1.weight.T,
            "b1": module.fc1.bias,
            "w2": module.fc2.weight.T,
            "b2": module.fc2.bias,
        }
    else:
        raw = {"w": module.fc.weight.T, "b": module.fc.bias}
    return {k: v.detach().clone()[None] for k, v in raw.items()}


def fit_single(
    obs: np.ndarray,
    actions: np.ndarray,
    keep: np.ndarray,
    num_actions: int,
    learner: str = "bc_mlp",
    hidden: int = 32,
    lr: float = 1e-2,
    steps: int = 200,
    seed: int = 0,
    member: int = 0,
    normaliser: Normaliser | None = None,
    dtype: torch.dtype = torch.float64,
) -> Ensemble:
    """Sequential reference: one ``nn.Module`` trained with ``torch.optim.Adam`` on exactly the kept frames."""
    keep = np.asarray(keep, dtype=bool)
    if not keep.any():
        raise ValueError(f"model {member} has no kept frame: cannot fit a policy on an empty dataset")
    normaliser = normaliser or Normaliser.fit(obs)
    x = torch.as_tensor(normaliser(obs.reshape(obs.shape[0], -1))[keep], dtype=dtype)
    y = torch.as_tensor(actions[keep], dtype=torch.long)
    module = member_module(learner, x.shape[1], num_actions, hidden, seed, member, dtype)
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        F.cross_entropy(module(x), y).backward()
        optimiser.step()
    return Ensemble(learner, module_params(learner, module), normaliser)
