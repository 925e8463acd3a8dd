"""The LightningModule's pieces that are not covered by the CLI runs: augmentation, input preparation, LDAM head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dfme.module import MERModule, NormedLinear, augment_clips


def test_augmentation_is_the_same_for_every_frame():
    torch.manual_seed(0)
    frame = torch.rand(4, 3, 1, 16, 16)
    clip = frame.expand(4, 3, 6, 16, 16).contiguous()
    out = augment_clips(clip, flip=True, max_shift=2.0)
    assert out.shape == clip.shape
    for t in range(1, 6):
        assert torch.equal(out[:, :, t], out[:, :, 0])
    assert not torch.allclose(out, clip)
    identity = augment_clips(clip, flip=False, max_shift=0.0)
    torch.testing.assert_close(identity, clip)


def test_shifts_are_whole_pixels_without_resampling():
    """Every augmented clip is the input translated by an integer number of pixels (|k| ≤ ⌊max_shift⌋) with the
    border replicated: values are copied, never interpolated (no train-only blur)."""
    torch.manual_seed(2)
    clip = torch.rand(16, 2, 3, 10, 12)
    out = augment_clips(clip, flip=False, max_shift=1.9)
    seen = set()
    for b in range(16):
        matches = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                rows = (torch.arange(10) + dy).clamp(0, 9)
                cols = (torch.arange(12) + dx).clamp(0, 11)
                if torch.allclose(out[b], clip[b][..., rows, :][..., cols], atol=1e-6):
                    matches.append((dy, dx))
        assert len(matches) == 1, f"clip {b} is not a whole-pixel shift of its input"
        seen.add(matches[0])
    assert len(seen) > 3  # the shifts vary
    torch.testing.assert_close(augment_clips(clip, flip=False, max_shift=0.9), clip)  # ⌊0.9⌋ = 0: no shift


def test_flip_mirrors_the_clip():
    torch.manual_seed(1)
    clip = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 3, 2, 4, 4)
    for _ in range(8):  # some draw flips sample 0
        out = augment_clips(clip, flip=True, max_shift=0.0)
        if not torch.allclose(out[0], clip[0]):
            torch.testing.assert_close(out[0], clip[0].flip(-1))
            return
    raise AssertionError("no flip in 8 draws of p = 0.5")


def test_onset_diff_input_and_inference_logits_without_the_prior():
    module = MERModule(imbalance="logit_adjust", clip_input="onset_diff", width_mult=0.125)
    counts = np.array([300, 200, 150, 120, 100, 80, 50])
    module.build(7, 3, counts)
    module.eval()
    x = torch.randint(0, 255, (2, 9, 16, 16, 3), dtype=torch.uint8)
    x[:, 1] = x[:, 0]  # a clip that starts at the onset frame the data module prepends
    prepared = module.prepare_inputs(x)
    assert prepared.shape == (2, 3, 8, 16, 16)
    assert torch.count_nonzero(prepared[:, :, 0]) == 0  # the onset frame minus itself, normalised with mean 0
    with torch.inference_mode():
        torch.testing.assert_close(module(x), module.net(prepared))  # inference: plain logits, no log-prior


def test_ldam_uses_a_cosine_head():
    module = MERModule(imbalance="ldam_drw", width_mult=0.125)
    module.build(7, 3, np.array([30, 20, 10, 10, 10, 5, 5]))
    assert isinstance(module.net.fc, NormedLinear)
    logits = module.net.fc(torch.randn(5, module.net.num_features))
    assert logits.abs().max() <= 1.0 + 1e-6


def test_cb_loss_weights_are_cui_weights_and_move_with_the_module():
    """The ``cb`` loss the module trains with: weights from an independent computation of Cui et al.'s effective
    number (the geometric series E_n = Σ_{k<n} β^k, not the closed form), normalised to sum to K = 7, registered
    as a buffer (so ``.to(device/dtype)`` moves them), and the loss is (1/B) Σ_i w_{y_i} CE_i (0.4.0; ≤ 0.3 and
    ``weight_reduction="weighted_mean"``: Σ_i w_{y_i} CE_i / Σ_i w_{y_i})."""
    counts = np.array([67, 51, 24, 141, 58, 38, 87])  # fold 2's training counts on the embedded benchmark
    module = MERModule(imbalance="cb", cb_beta=0.999, width_mult=0.125)
    module.build(7, 3, counts)
    effective = np.array([np.sum(0.999 ** np.arange(n)) for n in counts])
    expected = (1 / effective) * 7 / np.sum(1 / effective)
    weights = dict(module.named_buffers())["loss_fn.weights"]
    assert weights.dtype == torch.float32 and weights.device == module.device
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)  # float32 rounding of values ≈ 0.4–2.1
    assert weights.sum().item() == pytest.approx(7.0, rel=1e-6)
    assert module.to(torch.float64).loss_fn.weights.dtype == torch.float64
    z = torch.randn(16, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([3, 3, 3, 6, 6, 0, 0, 4, 4, 1, 5, 2, 3, 6, 0, 3])
    ce = -torch.log_softmax(z, 1)[torch.arange(16), y]
    w = torch.as_tensor(expected)[y]
    assert module.loss_fn(z, y).item() == pytest.approx((w * ce).mean().item(), rel=1e-6)
    legacy = MERModule(imbalance="cb", cb_beta=0.999, width_mult=0.125, weight_reduction="weighted_mean")
    legacy.build(7, 3, counts)
    legacy.to(torch.float64)
    assert legacy.loss_fn(z, y).item() == pytest.approx(((w * ce).sum() / w.sum()).item(), rel=1e-6)


def test_only_balanced_sampler_rebalances_the_loader():
    """Loss re-weighting and re-sampling are never combined: ``cb`` (and every loss remedy) keeps the plain
    shuffled loader, in ``dfme cv``/``reproduce`` (``linked``) and in ``dfme train`` (the CLI link)."""
    from dfme.folds import linked
    from dfme.lightning_cli import _uses_sampler

    for method in ("ce", "inv_freq", "cb", "focal", "ldam_drw", "logit_adjust"):
        assert not linked({"imbalance": method}, {})[1]["balanced_sampler"]
        assert not _uses_sampler(method)
    assert linked({"imbalance": "balanced_sampler"}, {})[1]["balanced_sampler"]
    assert _uses_sampler("balanced_sampler")


def test_onset_diff_subtracts_the_prepended_onset_frame():
    """(B, T + 1, S, S, C) with the onset first → T frames of (frame − onset)/255, normalised (an independent
    float64 computation; float32 rounding of values ≤ a few units)."""
    module = MERModule(clip_input="onset_diff", width_mult=0.125)
    module.build(7, 3, np.array([30, 20, 10, 10, 10, 5, 5]))
    module.norm_mean.copy_(torch.tensor([0.01, -0.02, 0.03]))
    module.norm_std.copy_(torch.tensor([0.1, 0.2, 0.3]))
    x = torch.randint(0, 255, (2, 9, 16, 16, 3), dtype=torch.uint8)
    prepared = module.prepare_inputs(x)
    assert prepared.shape == (2, 3, 8, 16, 16)
    diff = (x[:, 1:].double() - x[:, :1].double()) / 255.0
    expected = (diff - torch.tensor([0.01, -0.02, 0.03]).double()) / torch.tensor([0.1, 0.2, 0.3]).double()
    torch.testing.assert_close(prepared.double(), expected.permute(0, 4, 1, 2, 3), rtol=0, atol=1e-5)
