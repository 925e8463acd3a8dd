"""The LightningModule of ``doorping train|distill|attack|evaluate``: a distillation run as a Lightning loop.

* **fit** — one training step is one distillation iteration (manual optimisation): DC/DM update the synthetic
  images with ``SGD(S, lr_img, momentum 0.5)``, DD updates images and learning rates with
  ``Adam(0.01, β₁ 0.5)`` + ``StepLR``. The attack (NAIVE/DOORPING/INVISIBLE) lives in :class:`AttackState`.
  At the end the distilled set and the trigger are written to the run folder (spec §2.12).
* **test** — one test step trains one fresh evaluation network on the distilled set (DC protocol; DD replays its
  learned steps) and scores CTA, ASR (non-target) and ASR (all test images) (spec §2.10).

The checkpoint carries the synthetic set, the DD learning rates and the attack (trigger, masks, poison indices), so
``evaluate --ckpt`` re-scores a run with fresh networks; ``evaluate --distilled F [--trigger T]`` scores saved files.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule
from torch import nn

from doorping.artifacts import load_distilled, load_trigger, save_distilled, save_trigger
from doorping.augment import DSAParams
from doorping.config import METHODS, DCConfig, DDConfig, EvalConfig, Settings, TriggerConfig, as_dataclass
from doorping.datasets import ImageSet
from doorping.dc import dc_iteration, derive_seed, dm_iteration
from doorping.dd import FlatParams, dd_iteration, fixed_init_net, make_steps, raw_lr_init, replay
from doorping.evaluate import Scores, evaluate_one, score_model
from doorping.networks import ARCHS, build_network
from doorping.neurons import NEURON_SELECT
from doorping.poison import AttackState
from doorping.trigger import trigger_range
from paperlab_core.errors import ConfigError
from paperlab_core.logging import current_run_dir, log


class DistillModule(LightningModule):
    """Dataset distillation with an optional backdoor (DOORPING, NDSS 2023).

    Args:
        method: dc (gradient matching), dd (unrolled dataset distillation) or dm (distribution matching).
        attack: none, naive (NAIVEATTACK), doorping or invisible.
        arch: distillation network: toy, convnet, convnet_w32, convnet_w64, convnet_dc, alexnet.
        ipc: synthetic images per class (DD: ``images_per_class_per_step × distill_steps``; this value is ignored).
        iterations: distillation iterations (DD: real batches; several epochs when larger than one epoch).
        seed: seed of every draw of the run (nets, batches, poison set, trigger initialisation).
        trigger: attack settings (spec §2.2–2.5).
        dc: DC settings, also DM's (spec §2.6, §2.8).
        dd: DD settings (spec §2.7).
        evaluation: evaluation protocol (spec §2.10).
        distilled: evaluate this ``distilled.pt`` instead of distilling (``evaluate --distilled``).
        trigger_file: the ``trigger.pt`` used for the ASR of ``distilled`` (``evaluate --trigger``).
    """

    def __init__(
        self,
        method: str = "dc",
        attack: str = "doorping",
        arch: str = "toy",
        ipc: int = 10,
        iterations: int = 40,
        seed: int = 0,
        trigger: TriggerConfig = TriggerConfig(),  # shared default instances: never mutated
        dc: DCConfig = DCConfig(),
        dd: DDConfig = DDConfig(),
        evaluation: EvalConfig = EvalConfig(),
        distilled: str | None = None,
        trigger_file: str | None = None,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        if method not in METHODS:
            raise ConfigError(f"model.method {method!r}: expected one of {', '.join(METHODS)}")
        if arch not in ARCHS:
            raise ConfigError(f"model.arch {arch!r}: expected one of {', '.join(ARCHS)}")
        if ipc < 1 or iterations < 1:
            raise ConfigError(f"model.ipc and model.iterations must be ≥ 1, got {ipc} and {iterations}")
        self.settings = Settings(
            method, attack, arch, ipc, iterations, seed,
            as_dataclass(trigger, TriggerConfig), as_dataclass(dc, DCConfig), as_dataclass(dd, DDConfig),
            as_dataclass(evaluation, EvalConfig),
        )  # fmt: skip
        if self.settings.trigger.threshold_mode not in ("absolute", "relative"):
            raise ConfigError(
                f"trigger.threshold_mode {self.settings.trigger.threshold_mode!r}: expected absolute or relative"
            )
        if self.settings.trigger.neuron_select not in NEURON_SELECT:
            raise ConfigError(
                f"trigger.neuron_select {self.settings.trigger.neuron_select!r}: expected {' or '.join(NEURON_SELECT)}"
            )
        ev = self.settings.evaluation
        if ev.arch is not None and ev.arch not in ARCHS:
            raise ConfigError(f"evaluation.arch {ev.arch!r}: expected one of {', '.join(ARCHS)}")
        if ev.first_net < 0:
            raise ConfigError(f"evaluation.first_net must be ≥ 0, got {ev.first_net}")
        if ev.asr_primary not in ("non_target", "all"):
            raise ConfigError(f"evaluation.asr_primary {ev.asr_primary!r}: expected non_target or all")
        if self.settings.dc.dsa:
            self.settings.dc.dsa_params()  # a bad strategy/mode is a one-line error before any work
        if ev.dsa:
            DSAParams(strategy=ev.dsa_strategy).groups()
        if method == "dc":
            self.settings.loops()  # an ipc outside the official table needs explicit loops
        self.distilled_path, self.trigger_path = distilled, trigger_file
        self.save_hyperparameters(
            {**self.settings.to_dict(), "distilled": distilled, "trigger_file": trigger_file}
        )
        self.syn: nn.Parameter | None = None
        self.raw_lrs: nn.Parameter | None = None
        self.attack_state: AttackState | None = None
        self.scores: list[Scores] = []
        self.history: list[dict[str, float]] = []
        self.imported: dict[str, Any] | None = None
        self.score_sink: list[dict[str, float]] | None = None  # per-net scores for programmatic callers
        self.trajectory: list[tuple[int, torch.Tensor]] = []  # (iteration, trigger) with keep_trajectory
        self.trajectory_asr: list[list[float]] = []

    # ----------------------------------------------------------------------------------------- set-up
    @property
    def data(self) -> ImageSet:
        return self.trainer.datamodule.images

    @property
    def shape(self) -> tuple[int, int, tuple[int, int]]:
        return self.data.channels, self.data.num_classes, self.data.im_size

    def _fast(self) -> bool:
        return self._trainer is not None and bool(self.trainer.fast_dev_run)

    def _effective(self) -> Settings:
        """The settings, shrunk for ``--trainer.fast_dev_run`` (1 iteration, 2 outer loops, 1 inner epoch,
        2 trigger steps, 1 evaluation net × 1 epoch)."""
        if not self._fast():
            return self.settings
        s = Settings.from_dict(self.settings.to_dict())
        s.iterations, s.dc.outer_loop, s.dc.inner_loop, s.dc.dm_trigger_every = 1, 2, 1, 1
        s.trigger.max_steps, s.trigger.invisible_steps = 2, 2
        s.dd.distill_steps, s.dd.distill_epochs = 2, 1
        s.evaluation.num_eval, s.evaluation.epochs = 1, 1
        return s

    def planned_iterations(self) -> int:
        return self._effective().iterations

    def planned_eval_nets(self) -> int:
        return 1 if self._replay_protocol() else self._effective().evaluation.num_eval

    def _replay_protocol(self) -> bool:
        return (
            self.settings.method == "dd" and self.imported is None and self.settings.evaluation.arch is None
        )

    def setup(self, stage: str) -> None:
        if self.syn is not None:
            return
        s, data = self._effective(), self.data
        channels, num_classes, im_size = self.shape
        rng = np.random.default_rng([s.seed, 1])
        self.attack_state = AttackState(data, s.attack, s.trigger, rng, s.method)
        if s.trigger.target >= num_classes:
            raise ConfigError(f"trigger.target {s.trigger.target} is out of range (0..{num_classes - 1})")
        if s.method == "dd":
            per_step = num_classes * s.dd.images_per_class_per_step
            init = torch.randn(s.dd.distill_steps * per_step, channels, *im_size,
                               generator=torch.Generator(device="cpu").manual_seed(derive_seed(s.seed, "dd-syn")))  # fmt: skip
            labels = torch.arange(num_classes).repeat_interleave(s.dd.images_per_class_per_step)
            self.register_buffer("syn_labels", labels.repeat(s.dd.distill_steps))
            self.raw_lrs = nn.Parameter(
                torch.full((s.dd.distill_steps * s.dd.distill_epochs,), raw_lr_init(s.dd))
            )
            self.dd_net = FlatParams(fixed_init_net(s, self.shape))
            self.register_buffer("w0", self.dd_net.flat())
        else:
            init = self._init_synthetic(s, rng)
            self.register_buffer("syn_labels", torch.arange(num_classes).repeat_interleave(s.ipc))
        self.syn = nn.Parameter(init)
        if stage in ("test", "validate") and self.distilled_path:
            self._import_files()
        elif stage in ("test", "validate") and self.trigger_path:
            raise ConfigError("--trigger needs --distilled (a checkpoint carries its own trigger)")

    def _init_synthetic(self, s: Settings, rng: np.random.Generator) -> torch.Tensor:
        """DC/DM initialisation: N(0, 1) noise (official default) or random real images per class."""
        channels, num_classes, im_size = self.shape
        init = s.dc.init if s.method == "dc" else "real"
        if init not in ("noise", "real"):
            raise ConfigError(f"dc.init {init!r}: expected noise or real")
        if init == "noise":
            return torch.randn(num_classes * s.ipc, channels, *im_size,
                               generator=torch.Generator(device="cpu").manual_seed(derive_seed(s.seed, "syn-noise")))  # fmt: skip
        return torch.cat([self.attack_state.sample(c, s.ipc, rng) for c in range(num_classes)]).clone()

    def _import_files(self) -> None:
        """``evaluate --distilled F [--trigger T]``: score saved files instead of a checkpoint."""
        record = load_distilled(self.distilled_path)
        if record["dataset"] != self.data.name:
            raise ConfigError(
                f"{self.distilled_path} was distilled from {record['dataset']}, the data is {self.data.name} "
                f"(pass --data.name {record['dataset']})"
            )
        if tuple(record["images"].shape[1:]) != (self.data.channels, *self.data.im_size):
            raise ConfigError(f"{self.distilled_path}: images do not match the {self.data.name} image shape")
        self.imported = record
        self.syn = nn.Parameter(record["images"].float().clone())
        self.syn_labels = record["labels"].long().clone()
        state = self.attack_state
        if self.trigger_path:
            trig = load_trigger(self.trigger_path)
            if tuple(trig["trigger"].shape[1:]) != (self.data.channels, *self.data.im_size):
                raise ConfigError(
                    f"{self.trigger_path}: trigger does not match the {self.data.name} image shape"
                )
            state.attack = "invisible" if trig["kind"] == "additive" else "doorping"
            state.additive = trig["kind"] == "additive"
            state.trigger, state.mask = trig["trigger"].float(), trig["mask"].float()
            state.paste_mask = trig.get("paste_mask", trig["mask"]).float()
            state.cfg.target = int(trig["target_label"])
        else:
            state.use_probe()

    # ----------------------------------------------------------------------------------------- fit
    def configure_optimizers(self) -> Any:
        s = self.settings
        if s.method == "dd":
            optimizer = torch.optim.Adam([self.syn, self.raw_lrs], lr=s.dd.lr, betas=(0.5, 0.999))
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, s.dd.decay_epochs, s.dd.decay_factor)
            return [optimizer], [scheduler]
        lr = s.dc.lr_img if s.method == "dc" else s.dc.lr_img_dm
        return torch.optim.SGD([self.syn], lr=lr, momentum=s.dc.momentum)

    def on_fit_start(self) -> None:
        self.attack_state.to(self.device)
        self._data_on_device()

    def on_test_start(self) -> None:
        self.attack_state.to(self.device)
        self._data_on_device()

    def _data_on_device(self) -> None:
        data = self.data
        self.test_x, self.test_y = data.test_x.to(self.device), data.test_y.to(self.device)
        if self.settings.method == "dd":
            self.train_x, self.train_y = data.train_x.to(self.device), data.train_y.to(self.device)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        it = int(batch[0])
        s = self._effective()
        optimizer = self.optimizers()
        with (
            torch.autocast(self.device.type, enabled=False),
            torch.enable_grad(),
        ):  # second-order math in fp32
            if s.method == "dc":
                stats = dc_iteration(
                    it, s, self.attack_state, self.syn, optimizer, self.shape, self.manual_backward
                )
            elif s.method == "dm":
                stats = dm_iteration(
                    it, s, self.attack_state, self.syn, optimizer, self.shape, self.manual_backward
                )
            else:
                stats = self._dd_step(it, s, optimizer)
        values = stats.as_dict()
        self.history.append({"iteration": it, **values})
        if s.trigger.keep_trajectory and self.attack_state.attack in ("doorping", "invisible"):
            self.trajectory.append((it, self.attack_state.trigger.detach().cpu().clone()))
        self.log("train/loss", values["loss"], prog_bar=True)
        if self.attack_state.attack in ("doorping", "invisible"):
            self.log("train/trigger_steps", values["trigger_steps"], prog_bar=True)
            rng = trigger_range(self.attack_state.trigger, self.attack_state.paste_mask,
                                self.attack_state.std, self.attack_state.mean)  # fmt: skip
            self.log("train/trigger_max_abs", max(abs(rng["trigger_min"]), abs(rng["trigger_max"])))

    def _dd_step(self, it: int, s: Settings, optimizer: Any) -> Any:
        n = len(self.train_y)
        per_epoch = max(1, math.ceil(n / s.dd.batch_size))
        epoch, index = divmod(it, per_epoch)
        order = torch.from_numpy(np.random.default_rng([s.seed, epoch, 17]).permutation(n)).to(self.device)
        rows = order[index * s.dd.batch_size : (index + 1) * s.dd.batch_size]
        optimizer.zero_grad()
        stats = dd_iteration(
            it, s, self.attack_state, self.dd_net, self.w0, self.syn, self.syn_labels, self.raw_lrs,
            (self.train_x[rows], self.train_y[rows]), index,
        )  # fmt: skip
        optimizer.step()
        if index == 0:
            self.lr_schedulers().step()
        return stats

    def on_fit_end(self) -> None:
        if self.trainer.is_global_zero:
            self.write_artifacts(current_run_dir() or self.trainer.default_root_dir)

    # ----------------------------------------------------------------------------------------- artifacts
    def distilled_record(self) -> dict[str, Any]:
        s, data = self.settings, self.data
        record = {
            "images": self.syn.detach().cpu().clone(),
            "labels": self.syn_labels.detach().cpu().clone(),
            "mean": list(data.mean),
            "std": list(data.std),
            "dataset": data.name,
            "ipc": s.ipc if s.method != "dd" else s.dd.images_per_class_per_step * s.dd.distill_steps,
            "method": s.method,
            "attack": s.attack,
            "arch": s.arch,
            "iteration": len(self.history),
            "seed": s.seed,
            "config": s.to_dict(),
        }
        if s.method == "dd":
            record["lrs"] = torch.nn.functional.softplus(self.raw_lrs.detach()).cpu()
        return record

    def trigger_record(self) -> dict[str, Any]:
        state, data = self.attack_state, self.data
        return {
            **state.state(),
            "target_label": state.cfg.target,
            "kind": "additive" if state.additive else "patch",
            "bound": str(state.bound),
            "mean": list(data.mean),
            "std": list(data.std),
            "poison_indices": state.indices.cpu(),
            **{
                k: v for k, v in trigger_range(state.trigger, state.paste_mask, state.std, state.mean).items()
            },
        }

    def write_artifacts(self, folder: Any) -> None:
        from pathlib import Path

        folder = Path(folder)
        s = self.settings
        nrow = s.dd.images_per_class_per_step if s.method == "dd" else s.ipc
        save_distilled(folder, self.distilled_record(), nrow)
        if self.attack_state.active:
            save_trigger(folder, self.trigger_record())
        log(f"doorping: distilled set and trigger written to {folder}")

    # ----------------------------------------------------------------------------------------- test
    def evaluation_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.syn.detach(), self.syn_labels.to(self.device)

    def test_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        s = self._effective()
        index = int(batch[0]) + s.evaluation.first_net
        state = self.attack_state
        apply = state.apply  # no attack: the white-square probe (a clean model's ASR, as the official code)
        test_x, test_y = self.test_x, self.test_y
        if s.method == "dd" and s.dd.legacy_single_batch_test:
            test_x, test_y = test_x[:1024], test_y[:1024]
        with (
            torch.inference_mode(False),
            torch.autocast(self.device.type, enabled=False),
            torch.enable_grad(),
        ):
            if self._replay_protocol():
                steps = make_steps(self.syn.detach(), self.syn_labels, self.raw_lrs.detach(), s.dd)
                w = replay(self.dd_net, self.w0, steps)
                scores = score_model(self.dd_net.module_with(w), test_x, test_y, apply, state.cfg.target)
            else:
                images, labels = self.evaluation_set()
                arch = s.evaluation.arch or (self.imported or {}).get("arch") or s.arch
                scores, net = evaluate_one(
                    index,
                    images,
                    labels,
                    test_x,
                    test_y,
                    arch,
                    s.evaluation,
                    s.seed,
                    apply,
                    state.cfg.target,
                    self.shape[1],
                )
                if self.trajectory:
                    self.trajectory_asr.append([
                        score_model(net, test_x, test_y, lambda x, t=t: state.apply(x, t.to(x.device)),
                                    state.cfg.target).asr
                        for _, t in self.trajectory
                    ])  # fmt: skip  # fmt: skip
        self.scores.append(scores)
        if self.score_sink is not None:
            self.score_sink.append(scores.as_dict())
        self.log_dict({f"test/{k}": v for k, v in scores.as_dict().items()}, on_epoch=True, prog_bar=True)
        primary = scores.asr if s.evaluation.asr_primary == "non_target" else scores.asr_all
        self.log("test/asr_primary", primary, on_epoch=True)

    def on_test_epoch_end(self) -> None:
        if not self.scores:
            return
        for key in ("cta", "asr", "asr_all"):
            values = np.array([getattr(sc, key) for sc in self.scores], dtype=float)
            self.log(f"test/{key}_std", float(values.std()) if len(values) > 1 else 0.0)
        self.log("test/num_eval", float(len(self.scores)))
        if self.trajectory_asr:
            self._keep_trajectory()
        state = self.attack_state
        if state.active:
            for key, value in trigger_range(state.trigger, state.paste_mask, state.std, state.mean).items():
                self.log(f"test/{key}", value)
        self.scores = []

    def _keep_trajectory(self, threshold: float = 0.95) -> None:
        """Keep the triggers of the run whose mean ASR over the evaluation nets exceeds 0.95 (spec §2.3.6)."""
        from pathlib import Path

        from paperlab_core.logging import save_torch_atomic

        asr = np.array(self.trajectory_asr, dtype=float).mean(0)
        kept = [(it, t, a) for (it, t), a in zip(self.trajectory, asr, strict=True) if a > threshold]
        self.log("test/trajectory_kept", float(len(kept)))
        self.log("test/trajectory_asr_mean", float(np.mean([a for *_, a in kept])) if kept else float("nan"))
        folder = current_run_dir() or (Path(self.trainer.default_root_dir) if self._trainer else None)
        if folder is not None and self.trainer.is_global_zero:
            for it, trigger, a in kept:
                save_torch_atomic({"trigger": trigger, "iteration": it, "asr": float(a)},
                                  Path(folder) / "trajectory" / f"trigger_it{it:05d}.pt")  # fmt: skip
        self.trajectory_asr = []

    # ----------------------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["doorping_attack"] = self.attack_state.state()
        checkpoint["doorping_history"] = list(self.history)
        checkpoint["doorping_trajectory"] = list(self.trajectory)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for name in ("syn", "raw_lrs"):
            current = getattr(self, name, None)
            if name in state and current is not None and current.shape != state[name].shape:
                setattr(self, name, nn.Parameter(torch.empty_like(state[name])))
        if "syn_labels" in state:
            self.syn_labels = torch.empty_like(state["syn_labels"])
        if self.attack_state is not None and "doorping_attack" in checkpoint:
            self.attack_state.load_state(checkpoint["doorping_attack"])
        self.history = list(checkpoint.get("doorping_history", []))
        self.trajectory = list(checkpoint.get("doorping_trajectory", []))

    def checkpoint_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """A checkpoint evaluates itself, not the files it may have been evaluated from."""
        model = dict(config.get("model") or {})
        model.pop("distilled", None)
        model.pop("trigger_file", None)
        return {**config, "model": model}

    def evaluation_network(self, index: int) -> nn.Module:
        """The ``index``-th evaluation network trained on the distilled set (used by the defences)."""
        s = self.settings
        images, labels = self.evaluation_set()
        _, net = evaluate_one(index, images, labels, self.test_x, self.test_y, s.evaluation.arch or s.arch,
                              s.evaluation, s.seed, None, s.trigger.target, self.shape[1])  # fmt: skip
        return net

    def victim_network(self) -> nn.Module:
        """The model a defender audits: evaluation net 0 (DD: the replayed distilled training)."""
        if self._replay_protocol():
            steps = make_steps(self.syn.detach(), self.syn_labels, self.raw_lrs.detach(), self.settings.dd)
            with torch.enable_grad():
                return self.dd_net.module_with(replay(self.dd_net, self.w0, steps)).to(self.device)
        return self.evaluation_network(0)

    def build(self, arch: str | None = None, seed: int | None = None) -> nn.Module:
        channels, num_classes, im_size = self.shape
        return build_network(arch or self.settings.arch, channels, num_classes, im_size, seed)
