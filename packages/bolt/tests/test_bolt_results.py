"""The committed results files and the README that renders them (spec §6 items 16-18; no data needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paperlab_core.results import check_readme, load_results

PACKAGE = Path(__file__).resolve().parents[1]
REPRODUCE = sorted((PACKAGE / "results").glob("reproduce*.json"))


def test_there_is_a_committed_reproduce_record():
    assert REPRODUCE, "no results/reproduce*.json"


@pytest.mark.parametrize("path", REPRODUCE, ids=lambda p: p.name)
def test_every_bolt_pretraining_learnt_the_ranking_without_collapse(path):
    runs = [r["result"]["pretrain"] for r in load_results(path)["records"]
            if r["params"].get("method") == "bolt" or r["params"].get("kind") == "sweep"]  # fmt: skip
    assert runs
    for run in runs:
        assert run["final"]["rank_acc"] >= 0.8, run["final"]
        floor = 0.5 / run["proj_dim"] ** 0.5
        assert all(h["proj_std"] >= floor for h in run["history"]), run["history"]


@pytest.mark.parametrize("path", REPRODUCE, ids=lambda p: p.name)
def test_paper_table_is_todo_only_and_imagenet_is_skipped_offline(path):
    tables = load_results(path)["tables"]
    cells = [c for row in tables["paper"]["rows"] for c in row[1:]]
    assert cells and all(c == "TODO(PDF)" for c in cells)
    assert not any(re.search(r"\d", c) for c in cells)
    assert tables["imagenet"]["rows"][0][1].startswith("skipped offline")


@pytest.mark.parametrize("path", REPRODUCE, ids=lambda p: p.name)
def test_target_lines_hold_per_seed_deltas_consistent_with_their_verdict(path):
    data = load_results(path)
    lines = data["target_lines"] + data["gate_lines"]
    assert any(t["comparison"] == "bolt vs scratch" and t["protocol"] == "finetune" for t in lines)
    for t in lines:
        if t["delta_mean"] is None:  # a comparison whose methods are not (yet) in the records
            assert t["seeds"] == 0 and t["reached"] is None
            continue
        assert len(t["per_seed"]) == t["seeds"] and t["wins"] == sum(d >= 0 for d in t["per_seed"])
        assert t["delta_mean"] == pytest.approx(sum(t["per_seed"]) / t["seeds"])
        assert t["reached"] == (t["delta_mean"] > 0 and t["wins"] >= 2 * t["seeds"] / 3)


def test_readme_tables_equal_the_results_and_proposals_are_labelled():
    readme = PACKAGE / "README.md"
    assert check_readme(readme) == []
    text = readme.read_text()
    assert len(text.splitlines()) <= 300
    assert "TODO(PDF)" in text and "skipped offline" in text
    assert "(ours)" in text and "ours" in (PACKAGE / "src/bolt_ssl/configs/paper.yaml").read_text()


@pytest.mark.parametrize("path", REPRODUCE, ids=lambda p: p.name)
def test_mechanics_acceptance_lines_agree_with_the_pretraining_histories(path):
    """Issue #22: ranking accuracy on held-out pairs > 0.75 and proj std ≥ 0.5/√d at every logged epoch, per run."""
    data = load_results(path)
    lines = {line["run"]: line for line in data["mechanics_lines"]}
    records = {r["key"]: r for r in data["records"]}
    bolt_runs = [
        r
        for r in data["records"]
        if (r["params"].get("method") == "bolt" or r["params"]["kind"] == "sweep")
        and r["params"].get("branch", "online") == "online"
    ]
    assert bolt_runs and all(r["key"] in lines for r in bolt_runs)
    for r in data[
        "records"
    ]:  # a --branch target cell reuses its online cell's pre-training: one line per run
        if r["params"].get("branch") == "target":
            online = records[r["key"].replace("-target/", "/")]
            assert r["result"]["pretrain"] == online["result"]["pretrain"]
    for r in bolt_runs:
        pre, line = r["result"]["pretrain"], lines[r["key"]]
        stds = [h["proj_std"] for h in pre["history"] if "proj_std" in h]
        assert (
            len(stds) == r["result"]["pretrain_config"]["epochs"] + 1
        )  # initialisation + every epoch: throughout
        assert line["min_proj_std"] == min(stds) and line["floor"] == pytest.approx(
            0.5 / pre["proj_dim"] ** 0.5
        )
        assert line["rank_ok"] is True and line["rank_acc"] > 0.75 and line["no_collapse"] is True


def test_target_probe_record_repeats_the_online_digits_record_and_keys_the_target_apart():
    """``probe-target-digits.json`` re-probed the caches of ``reproduce-digits.json``: its online, scratch and floor
    cells equal that record's exactly (same backbones, draws and probe); target cells carry ``branch: target`` in key,
    params and protocol; the online → target lines are paired differences of those cells."""
    target = load_results(PACKAGE / "results" / "probe-target-digits.json")
    online = {r["key"]: r for r in load_results(PACKAGE / "results" / "reproduce-digits.json")["records"]}
    records = {r["key"]: r for r in target["records"]}
    shared = [k for k in records if k in online]
    assert len(shared) == 15  # floors + scratch + byol + token_byol + bolt, 3 seeds each
    for key in shared:
        for label, cells in records[key]["result"]["labels"].items():
            old = online[key]["result"]["labels"][label]
            if key.startswith("floors/"):
                assert cells == old
            else:
                assert {s: c["linear_probe"] for s, c in cells.items()} == {
                    s: c["linear_probe"] for s, c in old.items()
                }
    tkeys = sorted(k for k in records if "-target/" in k)
    assert tkeys == sorted(f"{m}-target/seed{s}" for m in ("bolt", "byol", "token_byol") for s in range(3))
    for key in tkeys:
        r = records[key]
        assert r["params"]["branch"] == "target" and r["result"]["protocol"]["branch"] == "target"
        assert {k: v for k, v in r["params"].items() if k != "branch"} == records[key.replace("-target", "")][
            "params"
        ]
    assert len(target["branch_lines"]) == 9
    for line in target["branch_lines"]:
        deltas = [t - o for t, o in zip(line["target"], line["online"], strict=True)]
        assert line["per_seed"] == pytest.approx(deltas) and line["wins"] == sum(d >= 0 for d in deltas)
        seed_cells = {
            s: records[f"{line['method']}-target/seed{s}"]["result"]["labels"][line["label"]][str(s)]
            for s in line["seeds"]
        }
        assert line["target"] == [seed_cells[s]["linear_probe"][line["metric"]] for s in line["seeds"]]
