"""Backdoor defences run against models trained on distilled sets (spec §2.11; the official code has none).

* Neural Cleanse (Wang et al., S&P 2019; constants of the reference code ``bolunwang/backdoor``): per label, the
  smallest mask that flips clean inputs to it; an outlier (MAD) test on the mask norms.
* STRIP (Gao et al., ACSAC 2019): the entropy of predictions on blends ``0.5·x + 0.5·x_j``; trojaned inputs keep a
  low entropy.
* Fine-pruning (Liu et al., RAID 2018): prune the last convolution's least active channels, then fine-tune.
* Range check (proposed): inputs with a pixel outside the valid normalised box.

All functions take a model in normalised space and tensors on the model's device; every batch is vectorised (Neural
Cleanse optimises the masks of all labels at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from doorping.evaluate import predict
from doorping.networks import last_conv_index

#: ``--defence`` values
DEFENCES = ("neural-cleanse", "strip", "fine-pruning", "range-check")
MAD_CONSTANT = 1.4826


# --------------------------------------------------------------------------------------------- Neural Cleanse
def anomaly_index(l1: np.ndarray) -> tuple[float, list[int]]:
    """MAD outlier test of the reversed-mask L1 norms: ``MAD = 1.4826·median|L1 − median|``; the anomaly index is
    ``|min L1 − median| / MAD``; label y is flagged when ``L1_y < median`` and ``|L1_y − median| / MAD > 2``."""
    l1 = np.asarray(l1, dtype=float)
    median = np.median(l1)
    mad = MAD_CONSTANT * np.median(np.abs(l1 - median))
    if mad == 0:
        return 0.0, []
    index = float(abs(l1.min() - median) / mad)
    flagged = [int(y) for y in np.flatnonzero((l1 < median) & (np.abs(l1 - median) / mad > 2))]
    return index, flagged


@dataclass
class CostSchedule:
    """The reference code's λ schedule for one label (spec §2.11).

    λ starts at 0; after ``patience`` epochs with success ≥ ``threshold`` it becomes ``init_cost``. Then ``patience``
    successful epochs multiply it by ``multiplier`` and ``patience`` failed epochs divide it by ``multiplier**1.5``.
    """

    init_cost: float = 1e-3
    patience: int = 5
    multiplier: float = 2.0
    threshold: float = 0.99
    cost: float = 0.0
    set_counter: int = 0
    up_counter: int = 0
    down_counter: int = 0
    up_flag: bool = False
    down_flag: bool = False
    history: list[float] = field(default_factory=list)

    def update(self, success: float) -> float:
        if self.cost == 0 and success >= self.threshold:
            self.set_counter += 1
            if self.set_counter >= self.patience:
                self.cost = self.init_cost
                self.up_counter = self.down_counter = 0
                self.up_flag = self.down_flag = False
        elif self.cost > 0:
            if success >= self.threshold:
                self.up_counter, self.down_counter = self.up_counter + 1, 0
            else:
                self.up_counter, self.down_counter = 0, self.down_counter + 1
            if self.up_counter >= self.patience:
                self.up_counter, self.up_flag = 0, True
                self.cost *= self.multiplier
            elif self.down_counter >= self.patience:
                self.down_counter, self.down_flag = 0, True
                self.cost /= self.multiplier**1.5
        self.history.append(self.cost)
        return self.cost


def _squash(raw: torch.Tensor) -> torch.Tensor:
    """tanh(x)/(2 − ε) + 0.5 ∈ (0, 1) (the reference parameterisation)."""
    return torch.tanh(raw) / (2 - 1e-7) + 0.5


def neural_cleanse(
    model: nn.Module,
    clean: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    num_classes: int,
    epochs: int = 30,
    batches: int = 8,
    batch: int = 32,
    seed: int = 0,
) -> dict:
    """Reverse-engineer one trigger per label (all labels at once) and run the MAD test.

    ``x' = (1 − m)⊙x + m⊙p`` in [0, 1] pixels (then normalised), ``m`` H×W shared over channels, loss
    ``CE(f(x'), y) + λ_y ‖m_y‖₁``, Adam(0.1, (0.5, 0.9)); the smallest-L1 mask with success ≥ 0.99 is kept.
    """
    device = clean.device
    n, c, h, w = clean.shape
    pixels = clean * std + mean
    g = torch.Generator(device="cpu").manual_seed(seed)
    mask_raw = (torch.rand(num_classes, 1, h, w, generator=g) * 2 - 1).to(device).requires_grad_(True)
    pattern_raw = (torch.rand(num_classes, c, h, w, generator=g) * 2 - 1).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([mask_raw, pattern_raw], lr=0.1, betas=(0.5, 0.9))
    schedules = [CostSchedule() for _ in range(num_classes)]
    labels = torch.arange(num_classes, device=device)
    best_l1 = torch.full((num_classes,), math.inf)
    best_mask = torch.zeros(num_classes, 1, h, w)
    best_pattern = torch.zeros(num_classes, c, h, w)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(epochs):
        hits = torch.zeros(num_classes, device=device)
        seen = 0
        for _ in range(batches):
            idx = torch.randint(0, n, (min(batch, n),), generator=g).to(device)
            x = pixels[idx]  # B×C×H×W
            m, p = _squash(mask_raw), _squash(pattern_raw)  # K×1×H×W, K×C×H×W
            stamped = (1 - m[:, None]) * x[None] + (m * p)[:, None]  # K×B×C×H×W
            logits = model(((stamped - mean) / std).reshape(-1, c, h, w))
            targets = labels.repeat_interleave(len(idx))
            ce = F.cross_entropy(logits, targets, reduction="none").view(num_classes, -1).mean(1)
            cost = torch.tensor([s.cost for s in schedules], device=device)
            loss = (ce + cost * m.abs().sum(dim=(1, 2, 3))).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            hits += (logits.argmax(1) == targets).view(num_classes, -1).float().sum(1).detach()
            seen += len(idx)
        success = (hits / seen).cpu()
        with torch.no_grad():
            l1 = _squash(mask_raw).abs().sum(dim=(1, 2, 3)).cpu()
            better = (success >= 0.99) & (l1 < best_l1)
            best_l1 = torch.where(better, l1, best_l1)
            best_mask[better] = _squash(mask_raw).detach().cpu()[better]
            best_pattern[better] = _squash(pattern_raw).detach().cpu()[better]
        for k, schedule in enumerate(schedules):
            schedule.update(float(success[k]))
    for p in model.parameters():
        p.requires_grad_(True)
    never = ~torch.isfinite(best_l1)  # no mask reached 99 %: report the final one (documented)
    with torch.no_grad():
        final_l1 = _squash(mask_raw).abs().sum(dim=(1, 2, 3)).cpu()
    l1 = torch.where(never, final_l1, best_l1).numpy()
    best_mask[never] = _squash(mask_raw).detach().cpu()[never]
    best_pattern[never] = _squash(pattern_raw).detach().cpu()[never]
    index, flagged = anomaly_index(l1)
    return {
        "l1": l1.tolist(),
        "anomaly_index": index,
        "flagged": flagged,
        "reached_99": (~never).tolist(),
        "masks": best_mask,
        "patterns": best_pattern,
    }


# --------------------------------------------------------------------------------------------- STRIP
def prediction_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in bits of each row of class probabilities."""
    return -(probs * torch.log2(probs.clamp_min(1e-12))).sum(-1)


@torch.inference_mode()
def strip_entropy(
    model: nn.Module,
    inputs: torch.Tensor,
    pool: torch.Tensor,
    n_blend: int = 100,
    seed: int = 0,
    chunk: int = 4096,
) -> torch.Tensor:
    """``H(x) = (1/N) Σ_n entropy(f(0.5·x + 0.5·x_j))`` with N random x_j from ``pool`` (blending is affine, so it
    is the same in normalised and in pixel space)."""
    model.eval()
    g = torch.Generator(device="cpu").manual_seed(seed)
    partners = torch.randint(0, len(pool), (len(inputs), n_blend), generator=g).to(inputs.device)
    blends = 0.5 * inputs[:, None] + 0.5 * pool[partners]  # M×N×C×H×W
    flat = blends.reshape(-1, *inputs.shape[1:])
    probs = torch.cat([F.softmax(model(flat[i : i + chunk]), -1) for i in range(0, len(flat), chunk)])
    return prediction_entropy(probs).view(len(inputs), n_blend).mean(1)


def strip_detect(clean_def: torch.Tensor, clean_test: torch.Tensor, triggered: torch.Tensor) -> dict:
    """Threshold = 1st percentile of the defender's clean entropies (FRR 1 %); flag H < threshold."""
    threshold = float(torch.quantile(clean_def.float(), 0.01))
    return {
        "threshold": threshold,
        "far": float((triggered >= threshold).float().mean()),
        "frr": float((clean_test < threshold).float().mean()),
    }


# --------------------------------------------------------------------------------------------- fine-pruning
@torch.inference_mode()
def channel_activity(model: nn.Sequential, conv: int, x: torch.Tensor) -> torch.Tensor:
    """Mean post-ReLU activation of each channel of convolution ``conv`` on ``x``."""
    model.eval()
    out = x
    for module in list(model)[: conv + 1]:
        out = module(out)
    return torch.relu(out).mean(dim=(0, 2, 3))


def prune_channels(model: nn.Sequential, conv: int, channels: torch.Tensor) -> None:
    """Zero the weights and biases of ``channels``: their outputs are exactly 0."""
    layer = model[conv]
    with torch.no_grad():
        layer.weight[channels] = 0.0
        if layer.bias is not None:
            layer.bias[channels] = 0.0


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def fine_prune(
    model: nn.Sequential,
    x_def: torch.Tensor,
    y_def: torch.Tensor,
    max_acc_drop: float = 0.04,
    prune_ratio_max: float = 0.9,
) -> dict:
    """Prune the last convolution's channels in increasing mean activation until the defender's accuracy drops
    by more than ``max_acc_drop`` (the last prune is undone) or ``prune_ratio_max`` of them are pruned."""
    conv = last_conv_index(model)
    order = torch.argsort(channel_activity(model, conv, x_def))
    base = accuracy(model, x_def, y_def)
    limit = int(prune_ratio_max * len(order))
    curve = [(0, base)]
    pruned = 0
    for k in range(1, limit + 1):
        trial = _copy(model)
        prune_channels(trial, conv, order[:k])
        acc = accuracy(trial, x_def, y_def)
        curve.append((k, acc))
        if base - acc > max_acc_drop:
            break
        pruned = k
    prune_channels(model, conv, order[:pruned])
    return {
        "conv": conv,
        "pruned": pruned,
        "channels": len(order),
        "order": order[:pruned].tolist(),
        "curve": curve,
    }


def fine_tune(
    model: nn.Sequential, conv: int, pruned: list[int], x: torch.Tensor, y: torch.Tensor, epochs: int = 20,
    lr: float = 0.01, batch: int = 32, seed: int = 0,
) -> None:  # fmt: skip
    """SGD(lr, momentum 0.9) on (x, y); pruned channels stay at exactly 0."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator(device="cpu").manual_seed(seed)
    index = torch.tensor(pruned, dtype=torch.long)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=g).to(x.device)
        for start in range(0, len(y), batch):
            idx = order[start : start + batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if len(index):
                prune_channels(model, conv, index)
    model.eval()


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


# --------------------------------------------------------------------------------------------- range check
def out_of_range(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, tol: float = 1e-3) -> torch.Tensor:
    """True for inputs with any value outside the valid normalised box ``[(0 − μ)/σ, (1 − μ)/σ]`` by > ``tol``."""
    low, high = (0.0 - mean) / std, (1.0 - mean) / std
    return ((x < low - tol) | (x > high + tol)).flatten(1).any(1)
