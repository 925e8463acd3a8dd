"""Configuration groups of a distillation run (every hyper-parameter of spec §2 is a field).

They are plain dataclasses so that LightningCLI exposes them as ``--model.trigger.bound``, ``--model.dc.outer_loop``
and so on, ``--print_config`` prints them and a checkpoint stores them as dictionaries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from paperlab_core.errors import ConfigError

#: ``--model.method`` values
METHODS = ("dc", "dd", "dm")
#: ``--model.dc.init`` values
INITS = ("noise", "real")
#: official (outer_loop, inner_loop) by images per class (``get_loops``)
OFFICIAL_LOOPS: dict[int, tuple[int, int]] = {
    1: (1, 1),
    10: (10, 50),
    20: (20, 25),
    30: (30, 20),
    40: (40, 15),
    50: (50, 10),
}


@dataclass
class TriggerConfig:
    """Attack settings (spec §2.2–2.5, §2.13).

    Args:
        size: side s of the square trigger (rows/cols [H−1−s, H−1)).
        target: target label.
        portion: poisoning ratio ε in (0, 1); ⌊ε·|X|⌋ training images are poisoned.
        topk: number of selected neurons k.
        alpha: activation amplification α (target = α·a_K(t₀)).
        layer: weight tensor whose Linear layer is read (official indexing, −2 = penultimate).
        lr: Adam learning rate of a DOORPING update (betas 0.9, 0.99).
        max_steps: at most this many optimiser steps per update.
        threshold: stop an update when the loss (checked before the backward) is below it.
        threshold_mode: ``absolute`` (official: loss < threshold) or ``relative`` (loss < threshold·mean(target²),
            the same test in the activation's own scale; equal to ``absolute`` when the target activation is 1).
        neuron_select: ``weight`` (official: top-k by Σ|W|) or ``active`` (ours: top-k by Σ|W| among the neurons
            active on the trigger at the start of the update, so the update is never a dead-neuron no-op).
        bound: none (official), valid, linf:EPS or l2:EPS (EPS in [0, 1] pixel units).
        keep_trajectory: keep every trigger whose ASR exceeds 0.95 at an evaluation (``trajectory/``).
        invisible_steps: Adam steps of an INVISIBLE update (None = 100 for DC/DM, 50 for DD).
        invisible_lr: Adam learning rate of an INVISIBLE update (None = 0.08 for DC/DM, 0.001 for DD).
        legacy_trigger_loop: the official trigger loop (hook leak, model per step, no detach); benchmark only.
        legacy_dd_mask_threshold: DD's ``canvas > 1`` mask (drops pixels drawn as 1).
        legacy_invisible: INVISIBLE's official quirks (non-detached target, DC accumulation, black anchor,
            test-image initialisation).
    """

    size: int = 2
    target: int = 0
    portion: float = 0.01
    topk: int = 1
    alpha: float = 10.0
    layer: int = -2
    lr: float = 0.08
    max_steps: int = 1000
    threshold: float = 0.5
    threshold_mode: str = "absolute"
    neuron_select: str = "weight"
    bound: str = "none"
    keep_trajectory: bool = False
    invisible_steps: int | None = None
    invisible_lr: float | None = None
    legacy_trigger_loop: bool = False
    legacy_dd_mask_threshold: bool = False
    legacy_invisible: bool = False


@dataclass
class DCConfig:
    """Dataset Condensation (spec §2.6); ``outer_loop``/``inner_loop`` None = the official ``get_loops`` table.

    DM (spec §2.8) uses ``lr_img_dm``, ``batch_real`` and, for DOORPING, ``dm_trigger_every`` and ``inner_loop``.
    ``dsa`` turns on differentiable Siamese augmentation (:mod:`doorping.augment`) for DC and DM: one shared
    transformation for the real and the synthetic batch of a class in each matching step, per-image ones when a
    net is trained on the synthetic set (DC inner loop, DM surrogate). ``dsa_strategy``/``dsa_mode`` are the
    official ``ParamDiffAug`` strategy string and mode (S: one group per call, M: all).
    """

    outer_loop: int | None = None
    inner_loop: int | None = None
    lr_img: float = 0.1
    momentum: float = 0.5
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    init: str = "noise"
    dis_metric: str = "ours"
    lr_img_dm: float = 1.0
    dm_trigger_every: int = 10
    dsa: bool = False
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    dsa_mode: str = "S"

    def dsa_params(self) -> Any:
        """The :class:`~doorping.augment.DSAParams` of this run (official strengths), validated."""
        from doorping.augment import DSAParams

        params = DSAParams(strategy=self.dsa_strategy, mode=self.dsa_mode)
        params.groups()
        return params


@dataclass
class DDConfig:
    """Dataset Distillation (spec §2.7): unrolled steps with learnable softplus learning rates.

    Args:
        distill_steps: distinct synthetic batches (steps of one epoch).
        distill_epochs: passes over them (unrolled steps = steps × epochs).
        images_per_class_per_step: synthetic images per class in each step.
        distill_lr: initial learning rate of every unrolled step.
        lr: Adam learning rate of the meta-optimiser (betas 0.5, 0.999).
        decay_epochs: StepLR period in epochs over the real data.
        decay_factor: StepLR factor.
        batch_size: real batch of one outer iteration.
        legacy_single_batch_test: evaluate on one 1024-image test batch, as the official DD test.
    """

    distill_steps: int = 10
    distill_epochs: int = 3
    images_per_class_per_step: int = 10
    distill_lr: float = 0.02
    lr: float = 0.01
    decay_epochs: int = 40
    decay_factor: float = 0.5
    batch_size: int = 1024
    legacy_single_batch_test: bool = False


@dataclass
class EvalConfig:
    """The evaluation protocol (spec §2.10): fresh nets trained on the distilled set.

    Args:
        num_eval: fresh networks trained on the distilled set.
        epochs: training epochs per network (the loop runs 0..epochs inclusive; lr ×0.1 after epochs//2 + 1).
        lr: SGD learning rate (official 0.01; the toy preset uses 0.05).
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        batch: training batch size.
        arch: evaluation architecture (None = the distillation architecture; another one = transfer).
        asr_primary: which ASR the progress bar and summaries call ``asr``-primary: non_target or all.
        dsa: train the evaluation nets with per-image DSA (the official DSA evaluation), strategy ``dsa_strategy``.
        first_net: index of the first network (nets ``first_net … first_net + num_eval − 1``, each seeded from the
            run seed and its index): ``first_net 1`` adds new nets to an earlier evaluation without repeating net 0.
    """

    num_eval: int = 3
    epochs: int = 300
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch: int = 256
    arch: str | None = None
    asr_primary: str = "non_target"
    dsa: bool = False
    dsa_strategy: str = "color_crop_cutout_flip_scale_rotate"
    first_net: int = 0


@dataclass
class Settings:
    """Everything a distillation needs besides the data (what the LightningModule and the benchmark share)."""

    method: str = "dc"
    attack: str = "doorping"
    arch: str = "toy"
    ipc: int = 10
    iterations: int = 40
    seed: int = 0
    trigger: TriggerConfig = field(default_factory=TriggerConfig)
    dc: DCConfig = field(default_factory=DCConfig)
    dd: DDConfig = field(default_factory=DDConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def loops(self) -> tuple[int, int]:
        """(outer_loop, inner_loop): the explicit values, else the official table for ``ipc``."""
        outer, inner = self.dc.outer_loop, self.dc.inner_loop
        if outer is None or inner is None:
            if self.ipc not in OFFICIAL_LOOPS:
                raise ConfigError(
                    f"ipc {self.ipc} has no official (outer_loop, inner_loop) (table: ipc in "
                    f"{sorted(OFFICIAL_LOOPS)}); set model.dc.outer_loop and model.dc.inner_loop"
                )
            table = OFFICIAL_LOOPS[self.ipc]
            outer = table[0] if outer is None else outer
            inner = table[1] if inner is None else inner
        if outer < 1 or inner < 0:
            raise ConfigError(f"dc.outer_loop must be ≥ 1 and dc.inner_loop ≥ 0, got {outer}/{inner}")
        return outer, inner

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        data = dict(data)
        return cls(
            **{k: v for k, v in data.items() if k not in ("trigger", "dc", "dd", "evaluation")},
            trigger=TriggerConfig(**data.get("trigger", {})),
            dc=DCConfig(**data.get("dc", {})),
            dd=DDConfig(**data.get("dd", {})),
            evaluation=EvalConfig(**data.get("evaluation", {})),
        )


def as_dataclass(value: Any, cls: type) -> Any:
    """A config group given as a dataclass, a mapping (jsonargparse/YAML) or None (defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls(**value)
    return cls(**vars(value))
