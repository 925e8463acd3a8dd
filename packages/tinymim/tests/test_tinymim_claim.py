"""Key claim on digits17 (spec §6 criterion 15): opt-in, ≥ 3 seeds, tens of minutes on a 2-core CPU."""

from __future__ import annotations

import statistics

import pytest
from tinymim.reproduce import Protocol, run


@pytest.mark.slow
def test_relation_kd_beats_scratch_and_student_mae_on_digits17(tmp_path):
    results = run(["digits17"], [0, 1, 2], ["scratch", "mae", "relation"], Protocol(), tmp_path, quick=False)
    accs = results["datasets"]["digits17"]["accuracy"]["20 labels/class"]
    relation = statistics.fmean(accs["relation"])
    assert relation - statistics.fmean(accs["scratch"]) >= 5.0
    assert relation - statistics.fmean(accs["mae"]) >= 5.0
