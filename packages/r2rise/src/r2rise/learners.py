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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from paperlab_core.errors import ConfigError

LEARNERS = ("bc_mlp", "bc_linear")
OBS_SCALINGS = ("env", "demos")


def member_generator(seed: int, member: int) -> torch.Generator:
    """The generator that initialises ensemble member ``member`` (independent of chunking)."""
    state = np.random.SeedSequence([int(seed), int(member)]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device="cpu").manual_seed(int(state[0]) << 32 | int(state[1]))


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
    """Per-model loss_m = Σ_f W_mf · CE_mf / max(1, Σ_f W_mf): (M, F, A), (F,), (M, F) → (M,).

    The objective as a plain autograd-able expression; ``fit_ensemble`` optimises it through the hand-written
    ``ensemble_grads``, which the tests check against autograd of this function."""
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


def gather_kept(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-model kept-frame lists: ``order`` (M, F) puts each row's kept frames first, in frame order (stable), and
    ``counts`` (M,) says how many there are, so ``order[m, :counts[m]]`` are exactly model m's training frames."""
    keep = np.asarray(weights) > 0
    return np.argsort(~keep, axis=1, kind="stable"), keep.sum(axis=1)


def frame_batch(
    x_all: torch.Tensor, y_all: torch.Tensor, order: np.ndarray, counts: np.ndarray, num_actions: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs of ``ensemble_grads`` for models whose kept frames are ``order[m, :counts[m]]``: frames with a
    constant-1 column (M, K, d+1) and their transpose, ``target`` = −onehot(y)·scale (M, K, A) and ``scale``
    (M, K, 1) = 1/n_m on real frames, 0 on the padding up to K = max counts."""
    dtype, device = x_all.dtype, x_all.device
    width = int(counts.max())
    index = torch.as_tensor(order[:, :width], device=device)
    count = torch.as_tensor(counts, device=device)[:, None]
    real = (torch.arange(width, device=device)[None, :] < count).to(dtype)
    scale = (real / count.to(dtype)).unsqueeze(-1)
    x = torch.cat([x_all[index], torch.ones(*index.shape, 1, dtype=dtype, device=device)], dim=-1)
    target = -F.one_hot(y_all[index], num_actions).to(dtype) * scale
    return x, x.transpose(1, 2).contiguous(), target, scale


def chunk_members(counts: np.ndarray, chunk: int) -> list[np.ndarray]:
    """Groups of at most ``chunk`` model rows with similar kept-frame counts (sorted by count), so each group pads
    its frame lists only to its own maximum."""
    order = np.argsort(counts, kind="stable")
    return [order[start : start + chunk] for start in range(0, len(order), chunk)]


def auto_chunk(counts: np.ndarray, hidden: int, dtype: torch.dtype, device: torch.device) -> int:
    """Models per group: all of them on an accelerator; on CPU enough that one (models, frames, hidden) activation
    is about 1 MiB, so the whole forward/backward of a group stays in cache."""
    if device.type != "cpu":
        return len(counts)
    per_model = max(1, int(counts.mean())) * max(hidden, 1) * torch.finfo(dtype).bits // 8
    return int(np.clip((1 << 20) // per_model, 1, len(counts)))


FOLDED = {
    "bc_mlp": (("l1", "w1", "b1"), ("w2", "w2", None), ("b2", None, "b2")),
    "bc_linear": (("l", "w", "b"),),
}


def to_module_layout(learner: str, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Einsum-layout parameters → the layout the hand-written backward trains in: ``nn.Linear``'s (M, out, in)
    with the bias folded in as a last input column where the layer reads the frames (``l1``/``l``: (M, out, d+1),
    frames carry a constant 1), ``w2`` (M, A, h) and ``b2`` (M, 1, A). Adam is elementwise, so the layout does not
    change any update; the batched matmuls are several times faster this way on CPU."""
    out = {}
    for name, weight, bias in FOLDED[learner]:
        if weight and bias:
            out[name] = torch.cat(
                [params[weight].transpose(1, 2), params[bias].unsqueeze(-1)], dim=2
            ).contiguous()
        elif weight:
            out[name] = params[weight].transpose(1, 2).contiguous()
        else:
            out[name] = params[bias].unsqueeze(1).contiguous()
    return out


def from_module_layout(learner: str, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``to_module_layout``."""
    out = {}
    for name, weight, bias in FOLDED[learner]:
        value = params[name]
        if weight and bias:
            out[weight], out[bias] = value[..., :-1].transpose(1, 2), value[..., -1]
        elif weight:
            out[weight] = value.transpose(1, 2)
        else:
            out[bias] = value.squeeze(1)
    return out


def ensemble_grads(
    learner: str,
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    x_t: torch.Tensor,
    target: torch.Tensor,
    scale: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Hand-written backward of Σ_m loss_m for a group of models with per-model frame lists.

    ``params`` are in ``to_module_layout``; ``x`` (M, K, d+1) holds each model's kept frames (padded) with a
    constant-1 last column, ``x_t`` its transpose, ``scale`` (M, K, 1) is 1/n_m on real frames and 0 on padding,
    ``target`` = −onehot(y)·scale (M, K, A). With p = softmax(logits), ∂loss_m/∂logits_mk = (p_mk − onehot_mk)/n_m
    (the mean cross-entropy gradient), then the chain rule through the linear layers and tanh (tanh' = 1 − h²).
    Returns gradients in the same layout; equal to autograd on ``weighted_ce`` (tested). Folded biases fuse the
    bias add and its gradient sum into the matmuls; ``bc_mlp`` with A = 2 uses ``_mlp_binary_grads``.
    """
    if learner == "bc_mlp":
        if params["w2"].shape[1] == 2:
            return _mlp_binary_grads(params, x, x_t, target, scale)
        hidden = torch.bmm(x, params["l1"].transpose(1, 2)).tanh_()
        logits = torch.bmm(hidden, params["w2"].transpose(1, 2)).add_(params["b2"])
        grad_logits = torch.addcmul(target, logits.log_softmax(dim=-1).exp_(), scale)
        grad_pre = torch.addcmul(hidden.new_tensor(1.0), hidden, hidden, value=-1)
        grad_pre.mul_(torch.bmm(grad_logits, params["w2"]))
        return {
            "l1": torch.bmm(x_t, grad_pre).transpose(1, 2),
            "w2": torch.bmm(grad_logits.transpose(1, 2), hidden),
            "b2": grad_logits.sum(dim=1, keepdim=True),
        }
    if learner == "bc_linear":
        logits = torch.bmm(x, params["l"].transpose(1, 2))
        grad_logits = torch.addcmul(target, logits.log_softmax(dim=-1).exp_(), scale)
        return {"l": torch.bmm(grad_logits.transpose(1, 2), x)}
    raise ValueError(f"unknown learner {learner!r} (choose from {', '.join(LEARNERS)})")


def _mlp_binary_grads(
    params: dict[str, torch.Tensor],
    x: torch.Tensor,
    x_t: torch.Tensor,
    target: torch.Tensor,
    scale: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """``bc_mlp`` gradients for A = 2 with seven passes over the (M, h, K) activations instead of about fifteen.

    Exact rewrites (real arithmetic): only the logit difference matters, z = h·v + c with v = w2₁ − w2₀,
    c = b2₁ − b2₀, p₁ = σ(z), and ∂/∂l₀ = −∂/∂l₁ = −g with g = (p₁ − y₁)/n_m. The first-layer gradient
    Σ_k x_k (g_k v ∘ tanh'(u_k)) is computed as v ∘ Σ_k (g_k x_k) tanh'(u_k), so the (M, h, K) tensor is never
    multiplied by g or v. In float64, tanh is evaluated as 2σ(2u) − 1, several times faster than ``torch.tanh`` on
    CPU (2u is exact; absolute error ~1e-16); float32 keeps ``torch.tanh``.
    """
    w2, b2 = params["w2"], params["b2"]
    v = w2[:, 1:] - w2[:, :1]  # (M, 1, h)
    c = b2[..., 1:] - b2[..., :1]  # (M, 1, 1)
    # activations are kept as (M, h, K): with K ≈ 500 frames contiguous, MKL's batched matmuls are faster here
    if x.dtype == torch.float64:
        hidden = torch.bmm(2 * params["l1"], x_t).sigmoid_()  # σ(2u); 2u is exact
        hidden = torch.add(hidden.new_tensor(-1.0), hidden, alpha=2)  # tanh(u) = 2σ(2u) − 1
    else:
        hidden = torch.bmm(params["l1"], x_t).tanh_()
    z = torch.bmm(v, hidden).add_(c)  # (M, 1, K)
    g = z.sigmoid_().mul_(scale.transpose(1, 2)).add_(target[..., 1:].transpose(1, 2))
    g_sum = g.sum(dim=2, keepdim=True)  # (M, 1, 1)
    grad_w2 = torch.bmm(g, hidden.transpose(1, 2))  # (M, 1, h)
    deriv = torch.addcmul(hidden.new_tensor(1.0), hidden, hidden, value=-1)  # tanh' = 1 − h²
    grad_l1 = torch.bmm(x_t * g, deriv.transpose(1, 2)).mul_(v)  # (M, d+1, h)
    return {
        "l1": grad_l1.transpose(1, 2),
        "w2": torch.cat([-grad_w2, grad_w2], dim=1),
        "b2": torch.cat([-g_sum, g_sum], dim=2),
    }


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
    chunk: int | None = None,
) -> Ensemble:
    """Train M = len(weights) models with full-batch Adam on Σ_m loss_m (see the module docstring).

    ``obs`` (F, d) and ``actions`` (F,) are the valid frames; ``weights`` (M, F) ∈ {0,1}. Row m is initialised
    with generator (seed, members[m]) (default members = 0..M−1), so chunked runs give the same models as one big
    run and paired experiments can share initialisations.

    Each model trains on a gathered copy of only its kept frames (≈ p·F, not F), models are processed in groups of
    ``chunk`` (default: ``auto_chunk``) for all ``steps`` at once, and gradients come from ``ensemble_grads``
    (no autograd graph). Models never interact, so grouping does not change any result.
    """
    if learner not in LEARNERS:
        raise ConfigError(f"unknown learner {learner!r} (choose from {', '.join(LEARNERS)})")
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != obs.shape[0]:
        raise ValueError(f"weights must have shape (M, F={obs.shape[0]}), got {weights.shape}")
    members = list(range(len(weights))) if members is None else [int(m) for m in members]
    if len(members) != len(weights):
        raise ValueError(f"members has {len(members)} entries for {len(weights)} weight rows")
    if not np.all((weights == 0) | (weights == 1)):
        raise ValueError("weights must be 0/1 frame-keep indicators")
    empty = np.flatnonzero(weights.sum(axis=1) == 0)
    if empty.size:
        raise ConfigError(
            f"model(s) {[members[i] for i in empty[:5]]} have no kept frame: cannot fit a policy on an "
            "empty dataset"
        )
    device = torch.device(device)
    normaliser = normaliser or Normaliser.fit(obs)
    x_all = torch.as_tensor(normaliser(obs.reshape(obs.shape[0], -1)), dtype=dtype, device=device)
    y_all = torch.as_tensor(actions, dtype=torch.long, device=device)
    order, counts = gather_kept(weights)
    inits = [init_member(learner, x_all.shape[1], num_actions, hidden, seed, m) for m in members]
    result = {k: torch.stack([p[k] for p in inits]).to(device, dtype) for k in inits[0]}
    groups = chunk_members(counts, chunk or auto_chunk(counts, hidden, dtype, device))

    def train_group(rows: np.ndarray) -> None:
        x, x_t, target, scale = frame_batch(x_all, y_all, order[rows], counts[rows], num_actions)
        rows_t = torch.as_tensor(rows, device=device)
        params = to_module_layout(learner, {k: v[rows_t] for k, v in result.items()})
        names = list(params)
        values = [params[k] for k in names]
        exp_avgs = [torch.zeros_like(v) for v in values]
        exp_avg_sqs = [torch.zeros_like(v) for v in values]
        for step in range(1, steps + 1):
            grads = ensemble_grads(learner, params, x, x_t, target, scale)
            adam_update(values, [grads[k] for k in names], exp_avgs, exp_avg_sqs, step, lr)
        for key, value in from_module_layout(learner, params).items():
            result[key][rows_t] = value

    workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers <= 1 or len(groups) == 1:
        for rows in groups:
            train_group(rows)
    else:
        # CPU: the per-group ops are too small for intra-op threads (and OpenMP spin-waiting on a busy core made a
        # 2-thread run ~40x slower); instead each of ``workers`` Python threads trains whole groups with one
        # intra-op thread (torch releases the GIL inside kernels). Groups are independent: results are unchanged.
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(train_group, groups))
        finally:
            torch.set_num_threads(workers)
    return Ensemble(learner, result, normaliser)


def adam_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    exp_avgs: list[torch.Tensor],
    exp_avg_sqs: list[torch.Tensor],
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """One in-place Adam step (Kingma & Ba 2015, Algorithm 1) on a list of tensors, with the same operations as
    ``torch.optim.Adam``'s update (one ``torch._foreach_*`` call per operation, so the per-step Python cost does not
    grow with the number of tensors). Elementwise, so it never couples ensemble members."""
    beta1, beta2 = betas
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, (1 - beta2**step) ** 0.5)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, value=-lr / (1 - beta1**step))


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
        raise ConfigError(f"model {member} has no kept frame: cannot fit a policy on an empty dataset")
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
