"""``gec-rl reproduce`` on a tiny grid: two shards + merge give the tables of one whole run; --quick's grid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from gec_rl import reproduce as reproduce_module
from gec_rl.cli import main

TINY = {"T": 8, "tiger_T": 8, "seeds": [0]}


def _tables(folder: Path) -> dict:
    """The tables of a results.json without the CPU-time column (process time differs between runs)."""
    tables = json.loads((folder / "results.json").read_text())["tables"]
    for table in tables.values():
        if "CPU s" in table["columns"]:
            drop = table["columns"].index("CPU s")
            table["columns"].pop(drop)
            for row in table["rows"]:
                row.pop(drop)
    return tables


def test_shards_and_merge_equal_a_whole_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(reproduce_module.BUDGETS, "quick", TINY)
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    base = ["reproduce", "--quick", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "whole")]) == 0
    assert main([*base, "--shard", "1/2", "--out", str(tmp_path / "s1")]) == 0
    assert main([*base, "--shard", "2/2", "--out", str(tmp_path / "s2")]) == 0
    assert not (tmp_path / "s1" / "results.json").exists()
    assert (
        main([*base, "--merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(tmp_path / "m")])
        == 0
    )
    whole, merged = _tables(tmp_path / "whole"), _tables(tmp_path / "m")
    assert set(whole) == {
        "regret",
        "decomposition",
        "model_free",
        "model_free_decomposition",
        "tiger",
        "checks",
    }
    assert merged == whole
    cells = len(reproduce_module.experiment_cells(True, None))
    assert cells == 2 * 7 + 4 + 1  # (2 envs × 7 agents + 4 model-free agents + Tiger) × 1 seed
    assert json.loads((tmp_path / "m" / "results.json").read_text())["seeds"] == [0]
    assert len(list((tmp_path / "s1" / "records").glob("*.json"))) == (cells + 1) // 2
    for name in ("regret_riverswim.png", "regret_frozenlake.png", "model_free_regret_riverswim.png"):
        assert (tmp_path / "m" / name).is_file(), name
    assert "smoke run" in (tmp_path / "whole" / "results.md").read_text()


def test_summary_rows_from_records_match_the_study(tmp_path: Path) -> None:
    """The reproduce tables (built from per-seed records) equal the `regret` verb's rows (built from curves)."""
    from gec_rl.study import aggregate_rows, run_study, run_summary, summary_rows

    results = run_study(["riverswim"], ["psrl", "ucbvi"], [0, 1], 40, 10)
    from_curves = summary_rows(results)
    from_records = aggregate_rows(
        (env, agent, json.loads(json.dumps(run_summary(res)))) for (env, agent, _), res in results.items()
    )
    for a, b in zip(from_curves, from_records, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == (pytest.approx(b[key], rel=1e-12) if isinstance(a[key], float) else b[key]), key


def test_quick_grid_and_default_seeds() -> None:
    quick = reproduce_module.experiment_cells(True, None)
    full = reproduce_module.experiment_cells(False, None)
    assert {c.params["seed"] for c in quick} == {0, 1} and {c.params["seed"] for c in full} == {0, 1, 2}
    assert {c.params["T"] for c in quick if c.params["part"] != "tiger"} == {500}
    assert {c.params["T"] for c in full if c.params["part"] != "tiger"} == {2000}
    assert len({c.key for c in full}) == len(full) == 3 * (14 + 4 + 1)


def test_jobs_run_shards_in_parallel_processes_and_equal_one_process(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """`--jobs 2` (paperlab_core.jobs: two child processes, one shard each, one records folder) gives the tables
    of a one-process run; the run folder keeps the parent's command; --jobs with --shard is a one-line error."""
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("PAPERLAB_THREADS", raising=False)
    base = ["reproduce", "--quick", "--device", "cpu", "--cells", "regret/riverswim/psrl"]
    assert main([*base, "--out", str(tmp_path / "one")]) == 0
    assert main([*base, "--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    out = capsys.readouterr()
    assert "[job 1/2]" in out.err and "[job 2/2]" in out.err  # each child's lines, prefixed
    assert _tables(tmp_path / "two") == _tables(tmp_path / "one")
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "two" / "records").glob("*.json"))]
    assert [r["key"] for r in records] == ["regret/riverswim/psrl/seed0", "regret/riverswim/psrl/seed1"]
    assert {r["command"].split("--shard ")[1].split()[0] for r in records} == {"1/2", "2/2"}  # one per child
    assert f"threads {max(1, (os.cpu_count() or 1) // 2)}" in records[0]["machine"]  # cores split over jobs
    config = yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())
    assert config["jobs"] == 2 and config["shard"] is None  # the parent's command, not a child's
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert "shard" not in metrics and metrics["cells"] == 2  # the parent's summary, no child's keys merged in
    assert main([*base, "--jobs", "2", "--shard", "1/2", "--out", str(tmp_path / "bad")]) != 0
    assert "--jobs and --shard exclude each other" in capsys.readouterr().err
