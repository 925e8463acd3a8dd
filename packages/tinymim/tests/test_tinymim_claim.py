"""Key claim on digits17 (spec §6 criterion 15): opt-in, ≥ 3 seeds, minutes on a 2-core CPU."""

from __future__ import annotations

import json
import statistics

import pytest
from tinymim.cli import main


@pytest.mark.slow
def test_relation_kd_beats_scratch_and_student_mae_on_digits17(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = ["--datasets", "digits17", "--variants", "scratch,mae,relation", "--seeds", "0,1,2"]
    assert main(["reproduce", *args, "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    records = json.loads((tmp_path / "run" / "results.json").read_text())["records"]

    def mean(variant: str) -> float:
        accs = [r["result"]["acc1"]["20 labels/class"] for r in records if r["params"]["variant"] == variant]
        assert len(accs) == 3
        return statistics.fmean(accs)

    assert mean("relation") - mean("scratch") >= 5.0
    assert mean("relation") - mean("mae") >= 5.0
