"""The attacked training set of a distillation run: trigger, mask, poison set, class pools (spec §2.2, §2.4).

:class:`AttackState` owns the trigger and the poisoned copy of the real training images. NAIVEATTACK stamps the
white square once; DOORPING and INVISIBLE re-stamp the fixed poison set after every trigger update. The clean
originals are kept, so re-stamping never accumulates (except under ``legacy_invisible``, which reproduces the
official DC accumulation ``x + t₁ + t₂ + …``).
"""

from __future__ import annotations

import numpy as np
import torch

from doorping.config import TriggerConfig
from doorping.datasets import ImageSet
from doorping.trigger import ATTACKS, Bound, doorping_init, naive_trigger, poison_indices, square_mask, stamp
from paperlab_core.errors import ConfigError


def check_attack(attack: str, cfg: TriggerConfig, num_classes: int, im_size: tuple[int, int]) -> Bound:
    """Validate the attack settings (one-line errors) and return the parsed bound."""
    if attack not in ATTACKS:
        raise ConfigError(f"model.attack {attack!r}: expected one of {', '.join(ATTACKS)}")
    if not 0 <= cfg.target < num_classes:
        raise ConfigError(f"trigger.target {cfg.target} is out of range (expected 0..{num_classes - 1})")
    if attack != "none" and not 0.0 < cfg.portion < 1.0:
        raise ConfigError(f"trigger.portion must lie in (0, 1), got {cfg.portion}")
    if cfg.topk < 1 or cfg.max_steps < 0 or cfg.alpha <= 0 or cfg.lr <= 0:
        raise ConfigError("trigger.topk must be ≥ 1, trigger.max_steps ≥ 0, trigger.alpha and trigger.lr > 0")
    square_mask(1, im_size, cfg.size)  # geometry check
    return Bound.parse(cfg.bound)


class AttackState:
    """Trigger, mask and poisoned training images of one run (all on the images' device).

    Args:
        data: the clean dataset.
        attack: none, naive, doorping or invisible.
        cfg: trigger settings.
        rng: numpy generator for the poison set and the trigger initialisation.
        method: dc, dd or dm (DD draws the DOORPING initialisation in [1, raw_max − 1]).
        device: where the images live.
    """

    def __init__(
        self,
        data: ImageSet,
        attack: str,
        cfg: TriggerConfig,
        rng: np.random.Generator,
        method: str = "dc",
        device: torch.device | str = "cpu",
    ) -> None:
        self.attack = attack
        self.cfg = cfg
        self.bound = check_attack(attack, cfg, data.num_classes, data.im_size)
        self.num_classes = data.num_classes
        self.clean = data.train_x.to(device)
        self.images = self.clean.clone()
        self.clean_labels = data.train_y.to(device)
        self.labels = self.clean_labels.clone()
        self.mean, self.std = data.mean_std(self.clean)
        c, size = data.channels, data.im_size
        self.additive = attack == "invisible"
        if attack == "naive":
            self.trigger, self.mask = naive_trigger(c, size, cfg.size, self.mean, self.std)
        elif attack == "doorping":
            self.trigger, self.mask = doorping_init(
                c,
                size,
                cfg.size,
                data.raw_max,
                self.mean,
                self.std,
                rng,
                method,
                cfg.legacy_dd_mask_threshold,
            )
        elif attack == "invisible":
            self.trigger, self.mask = self._invisible_init(data, rng)
        else:  # no attack: the white square is the probe that measures a clean model's ASR (official)
            self.trigger, self.mask = naive_trigger(c, size, cfg.size, self.mean, self.std)
        self.trigger = self.trigger.to(self.clean.device)
        self.mask = self.mask.to(self.clean.device)  # where the trigger may change (gradient mask)
        self.paste_mask = (  # where the trigger is pasted: the square (DD overwrites it whole), or everywhere
            square_mask(c, size, cfg.size, self.clean.device)
            if not self.additive
            else torch.ones_like(self.trigger)
        )
        self.reference = (
            self.trigger.detach().clone() if not self.additive else torch.zeros_like(self.trigger)
        )
        n = len(self.labels)
        self.indices = (
            poison_indices(n, cfg.portion, rng).to(self.clean.device)
            if attack != "none"
            else torch.zeros(0, dtype=torch.long, device=self.clean.device)
        )
        if attack != "none":
            self.labels[self.indices] = cfg.target
            self.repoison()
        self.class_pools = [torch.nonzero(self.labels == k).flatten() for k in range(self.num_classes)]
        self.leaf: torch.Tensor | None = None  # the legacy loop's persistent requires-grad trigger

    def _invisible_init(self, data: ImageSet, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A target-class image minus its mean (package default) or the first test image of the target class
        (``legacy_invisible``, the official leak of a test image); the whole image is the trigger."""
        if self.cfg.legacy_invisible:
            image = data.test_x[data.test_y == self.cfg.target][0:1]
            trigger = image.clone()
        else:
            pool = torch.nonzero(data.train_y == self.cfg.target).flatten()
            pick = int(pool[int(rng.integers(len(pool)))])
            image = data.train_x[pick : pick + 1]
            trigger = image - image.mean(dim=(2, 3), keepdim=True)
        return trigger.to(self.clean.device), torch.ones_like(trigger, device=self.clean.device)

    # ----------------------------------------------------------------------------------------- stamping
    @property
    def active(self) -> bool:
        return self.attack != "none"

    def use_probe(self) -> None:
        """Forget the attack and measure ASR with the NAIVE white square (what the official code does when no
        attack is requested)."""
        c, size = self.clean.shape[1], tuple(self.clean.shape[2:])
        self.attack, self.additive = "none", False
        self.trigger, self.mask = naive_trigger(c, size, self.cfg.size, self.mean, self.std)
        self.paste_mask = self.mask.clone()
        self.indices = self.indices[:0]

    def to(self, device: torch.device | str) -> AttackState:
        """Move every tensor to ``device`` (in place; returns self)."""
        for name in (
            "clean",
            "clean_labels",
            "images",
            "labels",
            "mean",
            "std",
            "trigger",
            "mask",
            "paste_mask",
            "reference",
            "indices",
        ):
            setattr(self, name, getattr(self, name).to(device))
        self.class_pools = [p.to(device) for p in self.class_pools]
        return self

    def state(self) -> dict[str, torch.Tensor | str]:
        """What a checkpoint needs to rebuild the attack (the images are re-stamped from the clean data)."""
        return {
            "attack": self.attack,
            "trigger": self.trigger.detach().cpu(),
            "mask": self.mask.cpu(),
            "paste_mask": self.paste_mask.cpu(),
            "reference": self.reference.cpu(),
            "indices": self.indices.cpu(),
        }

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state` and re-stamp the poison set."""
        device = self.clean.device
        for name in ("trigger", "mask", "paste_mask", "reference", "indices"):
            setattr(self, name, state[name].to(device))
        self.images = self.clean.clone()
        self.labels = self.clean_labels.clone()
        if self.active:
            self.labels[self.indices] = self.cfg.target
            self.repoison()
        self.class_pools = [torch.nonzero(self.labels == k).flatten() for k in range(self.num_classes)]

    def black(self) -> torch.Tensor:
        """The normalised all-zero image (−μ/σ per channel), INVISIBLE's official regulariser anchor."""
        return ((0.0 - self.mean) / self.std).expand(1, -1, *self.clean.shape[2:]).clone()

    def apply(self, x: torch.Tensor, trigger: torch.Tensor | None = None) -> torch.Tensor:
        """A triggered copy of ``x`` (test time and poisoning); the input is never modified."""
        trigger = self.trigger if trigger is None else trigger
        return stamp(x, trigger.detach().to(x.device), self.paste_mask.to(x.device), self.additive)

    @torch.no_grad()
    def repoison(self) -> None:
        """Re-stamp the poison set with the current trigger, detached, rows of P only (the fast path)."""
        if self.indices.numel() == 0:
            return
        if self.additive and self.cfg.legacy_invisible:
            self.images[self.indices] = self.images[self.indices] + self.trigger  # official DC accumulation
        else:
            self.images[self.indices] = self.apply(self.clean[self.indices])

    def repoison_legacy(self, leaf: torch.Tensor) -> None:
        """The official re-poison: the requires-grad trigger written into the image tensor without ``detach``,
        so the tensor's autograd history grows with every update (spec §7, inefficiency 3)."""
        self.images[self.indices] = self.images[self.indices] * (1 - self.mask) + self.mask * leaf[0]

    def sample(self, label: int, n: int, rng: np.random.Generator) -> torch.Tensor:
        """Up to ``n`` random training images of class ``label`` (poisoned images count as the target class)."""
        pool = self.class_pools[label]
        if len(pool) == 0:
            raise ConfigError(f"class {label} has no training images")
        order = torch.from_numpy(rng.permutation(len(pool))[:n]).to(pool.device)
        return self.images[pool[order]]
