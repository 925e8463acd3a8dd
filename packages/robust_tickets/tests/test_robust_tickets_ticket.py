"""Criterion 6, 7 and 17: ticket drawing, rewinding and retraining; search dynamics; legacy flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pytorch_lightning import Callback
from robust_tickets.losses import draw_global, random_scores
from robust_tickets.models import MaskedModel, load_pretrained, state_hash


@pytest.mark.parametrize("sparsity", [0.0, 0.2, 0.3, 0.4, 0.999])
def test_draw_sparsity_exact(sparsity):
    scores = torch.randn(10_007, generator=torch.Generator().manual_seed(0))
    keep = draw_global(scores, sparsity)
    assert abs(int((~keep).sum()) - sparsity * scores.numel()) <= 1
    kept_min = scores[keep].min() if keep.any() else float("inf")
    assert (~keep).sum() == 0 or scores[~keep].max() <= kept_min


def test_draw_ties_broken_by_flat_index_and_bad_sparsity():
    keep = draw_global(torch.zeros(10), 0.3)
    assert keep.tolist() == [False] * 3 + [True] * 7
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="sparsity"):
            draw_global(torch.zeros(10), bad)


def test_global_ranking_gives_different_layer_sparsities():
    a = torch.randn(1000, generator=torch.Generator().manual_seed(1)) - 1.0
    b = torch.randn(3000, generator=torch.Generator().manual_seed(2)) + 1.0
    keep = draw_global(torch.cat([a, b]), 0.3)
    s_a, s_b = 1 - keep[:1000].float().mean(), 1 - keep[1000:].float().mean()
    assert s_a > 0.6 and s_b < 0.2


def test_ticket_gates_exactly_binary(tiny_backbone):
    net = MaskedModel(tiny_backbone, mode="binary")
    keep = draw_global(random_scores(net.num_entries, 0), 0.3)
    net.set_ticket(keep)
    for train in (True, False):
        net.train(train)
        gates = net.compute_gates()
        assert set(torch.unique(gates).tolist()) == {0.0, 1.0}
        assert int((gates == 0).sum()) == int(round(0.3 * net.num_entries))


class _RewindProbe(Callback):
    def __init__(self):
        self.finetuned = None
        self.at_retrain = None

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == 0:
            self.finetuned = {k: v.clone() for k, v in module.net.backbone.state_dict().items()}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 0:
            self.at_retrain = {k: v.clone() for k, v in module.net.backbone.state_dict().items()}
            self.ticket = module.net.ticket.clone()


def test_imp_retrain_starts_from_pretrained_and_pruned_weights_stay_zero(fit_tiny):
    probe = _RewindProbe()
    module, _, _ = fit_tiny([probe], method="imp")
    theta0 = load_pretrained("tiny-bert", 2, init_seed=module.hparams.seed).state_dict()
    net = module.net
    masked_keys = {s.name + ".weight": s for s in net.slots}
    for key, value in probe.at_retrain.items():
        if key in masked_keys:
            s = masked_keys[key]
            m = probe.ticket[s.offset : s.offset + s.numel].view_as(value)
            assert torch.equal(value, theta0[key] * m)
        else:
            assert torch.equal(value, theta0[key]), key
        assert (
            not torch.equal(value, probe.finetuned[key])
            or key.endswith("position_ids")
            or "token_type" in key
        )
    assert int((net.ticket == 0).sum()) == round(0.3 * net.num_entries)
    final = dict(net.backbone.named_parameters())
    for s in net.slots:
        m = net.ticket[s.offset : s.offset + s.numel].view(s.rows, s.cols)
        w = final[s.name + ".weight"]
        assert float(w.detach()[m == 0].abs().max()) == 0.0
        assert not torch.equal(w, probe.at_retrain[s.name + ".weight"])  # kept weights did train


class _SearchProbe(Callback):
    def __init__(self):
        self.backbone_grad_norms = []
        self.hash_before = None

    def on_train_start(self, trainer, module):
        self.hash_before = state_hash(module.net.backbone)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        grads = [p.grad for p in module.net.backbone.parameters() if p.grad is not None]
        self.backbone_grad_norms.append(
            float(torch.norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
        )


def test_search_dynamics_and_frozen_backbone(fit_tiny):
    probe = _SearchProbe()
    module, _, _ = fit_tiny(
        [probe],
        method="robust",
        epochs_finetune=0,
        epochs_retrain=0,
        epochs_search=6,
        n_train=64,
        batch_size=8,
    )
    hist = [h for h in module.history if h["phase"] == "search"]
    l0 = np.array([h["l0"] for h in hist])
    near = np.array([h["near_binary"] for h in hist])
    assert np.polyfit(np.arange(len(l0)), l0, 1)[0] < 0
    assert near[-1] > near[0]
    assert module.budget["search"]["optimizer_steps"] == 48
    assert state_hash(module.net.backbone) == probe.hash_before
    assert max(probe.backbone_grad_norms) == 0.0


class _LegacyProbe(Callback):
    def __init__(self):
        self.carried = []  # backbone grad present BEFORE the step (not zeroed between steps)
        self.norms = []  # (pre-clip total norm, mask-only norm)

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.carried.append(any(p.grad is not None for p in module.net.backbone.parameters()))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.norms.append((module.last_clip_norm, module.last_mask_grad_norm))


@pytest.mark.parametrize("legacy", [True, False])
def test_legacy_backbone_grads_accumulate_inside_the_clip_norm(fit_tiny, legacy):
    probe = _LegacyProbe()
    fit_tiny(
        [probe], method="robust", epochs_finetune=0, epochs_retrain=0, epochs_search=1, legacy_backbone_grads=legacy,
        legacy_freelb_average=legacy,
    )  # fmt: skip
    if legacy:
        assert probe.carried == [False, True, True, True]
        assert all(total > mask * 1.01 for total, mask in probe.norms)
    else:
        assert not any(probe.carried)
        assert all(total == pytest.approx(mask) for total, mask in probe.norms)


def test_official_code_preset_turns_every_legacy_flag_on():
    import robust_tickets
    from robust_tickets.module import TicketModule

    preset = Path(robust_tickets.__file__).parent / "configs" / "official_code.yaml"
    model_cfg = yaml.safe_load(preset.read_text())["model"]
    import inspect

    flags = [p for p in inspect.signature(TicketModule.__init__).parameters if p.startswith("legacy_")]
    assert len(flags) == 5 and all(model_cfg[f] is True for f in flags)
    module = TicketModule(model_name="tiny-bert", legacy_no_retrain_clip=True, attacks=[])
    assert module.retrain_clip_mode() == "none"
    assert TicketModule(model_name="tiny-bert", attacks=[]).retrain_clip_mode() == "value"


def test_compare_rankings_against_brute_force():
    from robust_tickets.analysis import compare_rankings

    gen = torch.Generator().manual_seed(5)
    a = torch.randn(1000, generator=gen)
    b = 0.5 * a + torch.randn(1000, generator=gen)
    out = compare_rankings(a, b, 0.3)
    pruned_a = set(sorted(range(1000), key=lambda i: float(a[i]))[:300])
    pruned_b = set(sorted(range(1000), key=lambda i: float(b[i]))[:300])
    assert out["pruned_overlap"] == pytest.approx(len(pruned_a & pruned_b) / 300)
    assert out["pearson_r"] == pytest.approx(float(np.corrcoef(a.numpy(), b.numpy())[0, 1]), abs=1e-6)
    assert compare_rankings(a, a, 0.3)["pruned_overlap"] == 1.0
    big = torch.rand(200_000, generator=gen), torch.rand(200_000, generator=gen)
    assert compare_rankings(*big, 0.3)["pruned_overlap"] == pytest.approx(0.3, abs=0.01)  # chance level


# ------------------------------------------------------------------------------------- iterative IMP
def test_imp_schedule_closed_form_and_errors():
    from robust_tickets.losses import imp_schedule

    # 10 % of the remaining weights per round: 1 - 0.9^r, the last round exactly at the target
    assert imp_schedule(0.3) == pytest.approx([0.1, 0.19, 0.271, 0.3])
    assert imp_schedule(0.3, rounds=1) == [0.3]  # one-shot magnitude ticket
    assert imp_schedule(0.3, rounds=2) == pytest.approx([0.1, 0.3])
    assert imp_schedule(0.271, 0.1) == pytest.approx([0.1, 0.19, 0.271])  # exact multiple: no extra round
    assert len(imp_schedule(0.9, 0.1)) == 22  # 0.9^21 = 0.109 > 0.1, 0.9^22 < 0.1
    assert imp_schedule(0.0) == [0.0]
    with pytest.raises(ValueError, match="imp_rounds=5 is too many"):
        imp_schedule(0.3, 0.1, rounds=5)
    with pytest.raises(ValueError, match="imp_rate"):
        imp_schedule(0.3, 1.0)


class _TicketProbe(Callback):
    """Records the ticket and the backbone at the first batch of every phase."""

    def __init__(self):
        self.seen = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if module.phase not in self.seen:
            masked = [w.detach().clone() for w in module.net.masked_weights()]
            self.seen[module.phase] = (module.net.ticket.clone(), masked)


def test_iterative_imp_nested_tickets_by_magnitude_of_the_previous_round(fit_tiny, monkeypatch):
    from robust_tickets import module as module_lib

    probe = _TicketProbe()
    scores_seen = []
    original = module_lib.TicketModule.draw_scores

    def spy(self):
        scores = original(self)
        weights = torch.cat([w.detach().abs().flatten() for w in self.net.masked_weights()])
        scores_seen.append((weights, self.net.ticket.clone() if self.net.mode == "binary" else None))
        return scores

    monkeypatch.setattr(module_lib.TicketModule, "draw_scores", spy)
    module, _, _ = fit_tiny([probe], method="imp", imp_rounds=0, sparsity=0.3, epochs_finetune=1)
    assert [name for name, _ in module.phases] == [
        "finetune",
        "imp_round2",
        "imp_round3",
        "imp_round4",
        "retrain",
    ]
    assert set(module.budget) == {"finetune", "imp_round2", "imp_round3", "imp_round4", "retrain"}
    theta0 = load_pretrained("tiny-bert", 2, init_seed=module.hparams.seed)
    theta0_masked = MaskedModel(theta0, mode="dense").masked_weights()
    n = module.net.num_entries
    previous = torch.ones(n, dtype=torch.bool)
    for i, (phase, target) in enumerate(
        zip(["imp_round2", "imp_round3", "imp_round4", "retrain"], [0.1, 0.19, 0.271, 0.3], strict=True)
    ):
        keep = probe.seen[phase][0].bool()
        assert int((~keep).sum()) == round(target * n)  # cumulative sparsity of the round
        assert not (keep & ~previous).any()  # pruned entries stay pruned
        # brute force: the newly pruned entries are the smallest |W| among the survivors of the round
        weights, _ = scores_seen[i]
        new = previous & ~keep
        if new.any():
            assert float(weights[new].max()) <= float(weights[keep].min())
        # every round restarts from theta_0 (pre-trained weights), times the ticket
        for w, w0, s in zip(probe.seen[phase][1], theta0_masked, module.net.slots, strict=True):
            m = keep[s.offset : s.offset + s.numel].view(s.rows, s.cols).to(w.dtype)
            assert torch.equal(w, w0.detach() * m)
        previous = keep
    assert torch.equal(module.net.ticket.bool(), previous)


def test_one_shot_imp_has_no_extra_rounds(fit_tiny):
    from robust_tickets.module import TicketModule

    module = TicketModule(model_name="tiny-bert", method="imp", imp_rounds=1, attacks=[])
    assert [name for name, _ in module.phases] == ["finetune", "retrain"]
    with pytest.raises(ValueError, match="too many"):
        TicketModule(model_name="tiny-bert", method="imp", imp_rounds=9, attacks=[])


@pytest.mark.parametrize("init", ["reinit", "no_structure"])
def test_table4_retrain_inits(fit_tiny, init):
    """Table 4: ``reinit`` = the ticket on fresh weights; ``no_structure`` = dense theta_0 with only the
    pruned entries re-initialised."""
    from robust_tickets.models import random_init_state

    probe = _RewindProbe()
    module, _, _ = fit_tiny([probe], method="imp", retrain_init=init)
    net = module.net
    theta0 = load_pretrained("tiny-bert", 2, init_seed=module.hparams.seed).state_dict()
    fresh = random_init_state(net.backbone, module.hparams.seed + 1)
    masked = {s.name + ".weight": s for s in net.slots}
    assert int((probe.ticket == 0).sum()) == round(0.3 * net.num_entries)
    n_fresh_differs = 0
    for key, value in probe.at_retrain.items():
        if key in masked:
            s = masked[key]
            keep = probe.ticket[s.offset : s.offset + s.numel].view_as(value).bool()
            expected = fresh[key] * keep if init == "reinit" else torch.where(keep, theta0[key], fresh[key])
            assert torch.equal(value, expected), key
        else:
            assert torch.equal(value, fresh[key] if init == "reinit" else theta0[key]), key
        n_fresh_differs += not torch.equal(fresh[key], theta0[key])
    assert n_fresh_differs > len(masked)  # the fresh initialisation really differs from theta_0
    assert net.mode == ("binary" if init == "reinit" else "dense")
    final = dict(net.backbone.named_parameters())
    s = net.slots[0]
    keep = net.ticket[s.offset : s.offset + s.numel].view(s.rows, s.cols)
    pruned_after = final[s.name + ".weight"].detach()[keep == 0]
    if init == "reinit":
        assert float(pruned_after.abs().max()) == 0.0
    else:  # dense training moves the re-initialised entries too
        pruned_before = probe.at_retrain[s.name + ".weight"][keep == 0]
        assert not torch.equal(pruned_after, pruned_before)


def test_bad_retrain_init_is_rejected():
    from robust_tickets.module import TicketModule

    with pytest.raises(ValueError, match="retrain_init must be one of"):
        TicketModule(model_name="tiny-bert", attacks=[], retrain_init="scratch")


class _ResumeProbe(Callback):
    """Records the module's phase state at the first training batch of a (resumed) fit."""

    def __init__(self):
        self.seen = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.seen is None:
            self.seen = {
                "epoch": trainer.current_epoch, "phase": module.phase, "phase_step": module._phase_step,
                "sched_step": module._sched.last_epoch,
                "opt_steps": [int(s["step"]) for s in module._opt.state.values()][:1],
                "mask_scores": module.net.mask_scores.detach().clone(), "ticket": module.net.ticket.clone(),
                "backbone": {k: v.clone() for k, v in module.net.backbone.state_dict().items()},
            }  # fmt: skip


def test_resume_inside_a_phase_keeps_its_state(tmp_path, tiny_trainer):
    """`train --ckpt_path`: resuming inside the search keeps the learned masks, resuming inside the retrain keeps
    the retrained weights (neither phase restarts), and optimiser, schedule and step counters carry on."""
    from pytorch_lightning.callbacks import ModelCheckpoint
    from robust_tickets.data import TextDataModule
    from robust_tickets.hard_concrete import init_log_alpha
    from robust_tickets.module import TicketModule

    kwargs = dict(model_name="tiny-bert", attacks=[], method="robust", epochs_finetune=1, epochs_search=2,
                  epochs_retrain=2)  # fmt: skip
    ckpts = tmp_path / "ckpts"

    def fit(ckpt_path=None, callbacks=()):
        module = TicketModule(**kwargs)
        dm = TextDataModule(n_train=64, batch_size=16, n_attack=4)
        saver = ModelCheckpoint(
            dirpath=ckpts, filename="{epoch}", save_top_k=-1, every_n_epochs=1, save_on_train_epoch_end=True
        )
        trainer = tiny_trainer(
            fast_dev_run=False, max_epochs=1, limit_val_batches=1, enable_checkpointing=True,
            callbacks=[saver, *callbacks],
        )  # fmt: skip
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
        return module

    full = fit()
    assert [r["phase"] for r in full.history] == ["finetune", "search", "search", "retrain", "retrain"]
    steps = 4  # 64 examples / batch 16
    for epoch, phase in ((1, "search"), (3, "retrain")):  # the checkpoint after the phase's first epoch
        path = ckpts / f"epoch={epoch}.ckpt"
        saved = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        probe = _ResumeProbe()
        resumed = fit(str(path), [probe])
        seen = probe.seen
        assert (seen["epoch"], seen["phase"], seen["phase_step"], seen["sched_step"]) == (
            epoch + 1, phase, steps, steps,
        )  # fmt: skip
        assert seen["opt_steps"] == [steps]
        assert torch.equal(seen["mask_scores"], saved["net.mask_scores"])
        if phase == "search":  # not reset to the initial log alpha
            assert not torch.allclose(
                seen["mask_scores"], torch.full_like(seen["mask_scores"], init_log_alpha(0.9))
            )
        else:  # not rewound: the weights are the ones retrained for one epoch
            assert torch.equal(seen["ticket"], saved["net.ticket"])
            for key, value in seen["backbone"].items():
                assert torch.equal(value, saved["net.backbone." + key]), key
        assert [r["phase"] for r in resumed.history] == [r["phase"] for r in full.history]
        assert resumed.budget[phase]["optimizer_steps"] == full.budget[phase]["optimizer_steps"]
