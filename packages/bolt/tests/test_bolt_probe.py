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
