"""Results files and the README blocks rendered from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paperlab_core import results


def _write(tmp_path: Path, value: float) -> Path:
    table = results.Table(["method", "ACC"], formats={"ACC": ".2f"})
    table.add("ours", value)
    table.add("baseline", None)
    doc = results.results_record("demo reproduce --quick", "env: demo", [0, 1], {"main": table})
    path = tmp_path / "results" / "quick.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_table_markdown() -> None:
    table = results.Table(["a", "b"], formats={"b": ".1%"})
    table.add("x", 0.1234)
    assert table.to_markdown() == "| a | b |\n|---|---|\n| x | 12.3% |"
    with pytest.raises(ValueError, match="3 cells"):
        table.add(1, 2, 3)


def test_readme_block_render_and_check(tmp_path: Path) -> None:
    _write(tmp_path, 73.214)
    readme = tmp_path / "README.md"
    readme.write_text("# demo\n\n<!-- results: results/quick.json table=main -->\nstale\n<!-- /results -->\n")
    assert len(results.check_readme(readme)) == 1
    readme.write_text(results.render_readme(readme))
    text = readme.read_text()
    assert "| ours | 73.21 |" in text and "| baseline | – |" in text and "`demo reproduce --quick`" in text
    assert results.check_readme(readme) == []
    _write(tmp_path, 70.0)  # the record changed: the README is stale
    assert "differs from its record" in results.check_readme(readme)[0]
    readme.write_text(readme.read_text().replace("results/quick.json", "results/missing.json"))
    assert "missing.json" in results.check_readme(readme)[0]


def test_block_shows_a_dirty_commit() -> None:
    doc = {"command": "demo reproduce", "machine": "env", "seeds": None, "tables": {"t": {"columns": ["a"]}}}
    clean = results.render_block({**doc, "commit": "0123456789abcdef0123"})
    dirty = results.render_block({**doc, "commit": "0123456789abcdef0123+dirty"})
    assert "commit 0123456789ab ·" in clean and "commit 0123456789ab+dirty ·" in dirty


def test_block_names_the_versions_merged_cells_ran_with() -> None:
    now = "env: demo 0.3.0 | paperlab-core 0.2.4 | python 3.11.7 | device AMD EPYC | threads 1"
    old = "env: demo 0.2.0 | paperlab-core 0.2.0 | python 3.11.7 | device AMD EPYC | threads 1"
    gpu = "env: demo 0.3.0 | paperlab-core 0.2.4 | python 3.11.7 | device H100 | threads 1"
    assert results.machine_differences(now, [now, old, gpu, old]) == [
        "demo 0.2.0, paperlab-core 0.2.0",
        "device H100",
    ]
    doc = {"command": "c", "commit": "0" * 40, "seeds": None, "tables": {"t": {"columns": ["a"]}}}
    block = results.render_block({**doc, "machine": now, "record_machines": [now, old]})
    assert f"{now} (cells ran with: demo 0.2.0, paperlab-core 0.2.0) · record" in block
    # records that all ran where the tables were built add nothing to the line
    assert f"{now} · record" in results.render_block({**doc, "machine": now, "record_machines": [now]})
    assert f"{now} · record" in results.render_block({**doc, "machine": now})


def test_results_file_needs_provenance(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"tables": {}}))
    with pytest.raises(ValueError, match="lacks command, commit, machine, seeds"):
        results.load_results(path)


def test_git_commit_outside_a_checkout(tmp_path: Path) -> None:
    assert results._git_commit(tmp_path) == "unknown"
