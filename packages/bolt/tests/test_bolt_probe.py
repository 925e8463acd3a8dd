"""The linear-probe protocols (spec §2.8 ``probe spec`` and our val-tuned ``probe val``) against brute force."""

from __future__ import annotations

import numpy as np
import pytest
from bolt_ssl.metrics import classification_metrics
from bolt_ssl.protocols import ProtocolConfig, logistic_probe, probe_predict
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from paperlab_core.errors import ConfigError


def _ordinal_task(seed: int, n_train: int, n_noise: int):
    """5 ordinal grades from one informative direction plus ``n_noise`` pure-noise features."""
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 5, n)
        signal = y[:, None] + rng.normal(0, 1.2, (n, 2))
        return np.concatenate([signal, rng.normal(0, 1, (n, n_noise))], 1), y

    return draw(n_train), draw(200), draw(300)


def _brute_force(train, val, test, grid):
    """Every C fitted by hand (StandardScaler on the labelled rows), val QWK, best C (smaller on ties)."""
    scaler = StandardScaler().fit(train[0])
    best, best_c, best_prob = -np.inf, None, None
    for c in sorted(grid):
        clf = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(train[0]), train[1])
        val_prob = np.zeros((len(val[1]), 5))
        val_prob[:, clf.classes_] = clf.predict_proba(scaler.transform(val[0]))
        score = classification_metrics(val[1], val_prob, "ordinal", 5)["qwk"]
        if score > best:
            test_prob = np.zeros((len(test[1]), 5))
            test_prob[:, clf.classes_] = clf.predict_proba(scaler.transform(test[0]))
            best, best_c, best_prob = score, c, test_prob
    return best_c, best_prob


@pytest.mark.parametrize("seed", [0, 1])
def test_val_probe_picks_the_brute_force_c_and_its_probabilities(seed):
    train, val, test = _ordinal_task(seed, n_train=40, n_noise=60)  # few labels, many noise features
    cfg = ProtocolConfig(probe="val")
    (prob,), c = probe_predict(train[0], train[1], val[0], val[1], [test[0]], "ordinal", 5, cfg)
    want_c, want_prob = _brute_force(train, val, test, cfg.probe_c_grid)
    assert c == want_c
    # the same lbfgs fit on the same arrays: equal to float64 round-off
    np.testing.assert_allclose(prob, want_prob, rtol=0, atol=1e-10)


def test_val_probe_regularises_more_than_c1_when_labels_are_few_and_features_noisy():
    """With 40 labelled rows and 60 noise dimensions, C = 1 over-fits: the val choice is smaller and scores better."""
    train, val, test = _ordinal_task(0, n_train=40, n_noise=60)
    tuned, c = probe_predict(
        train[0], train[1], val[0], val[1], [test[0]], "ordinal", 5, ProtocolConfig(probe="val")
    )
    fixed, c1 = probe_predict(train[0], train[1], None, None, [test[0]], "ordinal", 5, ProtocolConfig())
    assert c1 == 1.0 and c < 1.0
    q = [classification_metrics(test[1], p[0], "ordinal", 5)["qwk"] for p in (tuned, fixed)]
    assert q[0] > q[1]


def test_spec_probe_is_c1_and_ignores_the_val_split():
    train, val, test = _ordinal_task(2, n_train=80, n_noise=5)
    (prob,), c = probe_predict(train[0], train[1], val[0], val[1], [test[0]], "ordinal", 5, ProtocolConfig())
    assert c == 1.0
    np.testing.assert_array_equal(
        prob, logistic_probe(train[0], train[1], test[0], "ordinal", 5, ProtocolConfig())
    )


def test_val_probe_needs_a_val_split_and_a_known_mode():
    train, _, test = _ordinal_task(3, n_train=30, n_noise=2)
    with pytest.raises(ConfigError, match="val split"):
        probe_predict(train[0], train[1], None, None, [test[0]], "ordinal", 5, ProtocolConfig(probe="val"))
    with pytest.raises(ConfigError, match="probe"):
        probe_predict(train[0], train[1], None, None, [test[0]], "ordinal", 5, ProtocolConfig(probe="cv"))


# --------------------------------------------------------------------------------------------- probe feature sets
def _tiny_vit(readout: str = "cls"):
    import torch
    from bolt_ssl.models import TokenViT, ViTConfig

    torch.manual_seed(0)
    cfg = ViTConfig(img_size=8, patch_size=4, in_chans=1, embed_dim=16, depth=4, num_heads=2, readout=readout)
    return TokenViT(cfg).eval(), torch.randn(3, 1, 8, 8)


def test_probe_feature_sets_against_a_manual_forward():
    """readout = forward; mean / cls+mean from the final-norm'd tokens; last4 = CLS after each block through the
    final norm (computed here with timm's own block list, independently of ``probe_features``)."""
    import torch

    net, x = _tiny_vit()
    with torch.no_grad():
        z = net.vit.norm_pre(net.add_pos(net.embed(x)))
        per_block = []
        for block in net.vit.blocks:
            z = block(z)
            per_block.append(net.vit.norm(z))
        final = per_block[-1]
        torch.testing.assert_close(net.probe_features(x, "readout"), net(x), rtol=0, atol=0)
        torch.testing.assert_close(net.probe_features(x, "mean"), final[:, 1:].mean(1), rtol=1e-6, atol=1e-6)
        both = net.probe_features(x, "cls+mean")
        assert both.shape == (3, 32)
        torch.testing.assert_close(both[:, :16], net(x), rtol=1e-6, atol=1e-6)
        last4 = net.probe_features(x, "last4")
        assert last4.shape == (3, 64)
        for i in range(4):
            torch.testing.assert_close(
                last4[:, 16 * i : 16 * (i + 1)], per_block[i][:, 0], rtol=1e-6, atol=1e-6
            )
        # a mean-readout backbone's readout is the "mean" feature set of the same weights
        mean_net, _ = _tiny_vit("mean")
        mean_net.load_state_dict(net.state_dict())
        torch.testing.assert_close(mean_net(x), net.probe_features(x, "mean"), rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="probe features"):
        net.probe_features(x, "last5")


def test_features_batches_and_empty_inputs_keep_the_width():
    from bolt_ssl.protocols import features

    net, _ = _tiny_vit()
    images = np.random.default_rng(0).integers(0, 255, (7, 8, 8, 1), dtype=np.uint8)
    whole = features(net, images, [0.5], [0.25], batch=500, kind="last4")
    pieces = features(net, images, [0.5], [0.25], batch=3, kind="last4")
    assert whole.shape == (7, 64)
    np.testing.assert_allclose(pieces, whole, rtol=1e-5, atol=1e-6)  # fp32, batch-size-independent ops
    assert features(net, images[:0], [0.5], [0.25], kind="cls+mean").shape == (0, 32)


# --------------------------------------------------------------------------------------------- layer-wise lr decay
def test_layer_decay_groups_cover_every_parameter_once_with_the_decayed_lr():
    import torch
    from bolt_ssl.protocols import Classifier, param_groups

    net, _ = _tiny_vit()
    model = Classifier(net, 5)
    spec = param_groups(model, ProtocolConfig())
    assert {g["lr"] for g in spec} == {1e-3}  # d = 1: the spec's single learning rate
    decayed = {id(p) for g in spec if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(p) for p in model.parameters() if p.ndim >= 2}
    groups = param_groups(model, ProtocolConfig(layer_decay=0.5))
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    expected = {
        "head.weight": 1e-3,
        "backbone.vit.norm.weight": 1e-3,
        "backbone.vit.blocks.3.attn.qkv.weight": 1e-3 * 0.5,
        "backbone.vit.blocks.0.mlp.fc1.bias": 1e-3 * 0.5**4,
        "backbone.vit.patch_embed.proj.weight": 1e-3 * 0.5**5,
        "backbone.vit.cls_token": 1e-3 * 0.5**5,
        "backbone.vit.pos_embed": 1e-3 * 0.5**5,
    }
    named = dict(model.named_parameters())
    for name, lr in expected.items():
        assert lr_of[id(named[name])] == pytest.approx(lr, rel=1e-12), name
    with pytest.raises(ConfigError, match="layer decay"):
        param_groups(model, ProtocolConfig(layer_decay=1.5))
    # the optimiser the fine-tuning builds from these groups steps every parameter
    opt = torch.optim.AdamW(groups, lr=1e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
