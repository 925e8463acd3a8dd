"""Criterion 5: lambda schedule (and the official x3 counter); LR warm-up/decay."""

from __future__ import annotations

import itertools

import pytest
from robust_tickets.losses import lambda_at, linear_warmup_decay


def test_ramp_breakpoints():
    total = 1000
    lam = [lambda_at(t, total, amp=0.5) for t in range(total)]
    assert all(v == 0 for v in lam[:101])
    assert lam[250] == pytest.approx(0.5 * 150 / 300)
    assert lam[400] == pytest.approx(0.5) and all(v == pytest.approx(0.5) for v in lam[400:])
    diffs = [b - a for a, b in itertools.pairwise(lam[100:401])]
    assert all(d == pytest.approx(0.5 / 300) for d in diffs)


def test_legacy_counter_moves_breakpoints_to_a_third():
    total = 3000
    lam = [lambda_at(t, total, amp=0.5, counter_per_batch=3) for t in range(total)]
    assert lam[100] == 0 and lam[101] > 0  # f_s/3 = 3.3 %
    assert lam[399] < 0.5 and lam[400] == pytest.approx(0.5)  # (f_s + f_w)/3 = 13.3 %


def test_constant_schedule():
    assert lambda_at(0, 100, amp=0.3, kind="constant") == pytest.approx(0.3)


def test_linear_warmup_decay():
    total = 100
    lr = [linear_warmup_decay(s, total, 0.1) for s in range(total)]
    assert lr[0] == pytest.approx(0.1) and lr[9] == pytest.approx(1.0)
    assert lr[10] == pytest.approx(1.0) and lr[55] == pytest.approx(0.5) and lr[-1] == pytest.approx(1 / 90)
