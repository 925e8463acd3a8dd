"""The reproduction grid and its tables are built from records alone (shards + merge = one run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from doorping.reproduce import by_row, cell_config, cells_for, checks, summarize


def _record(row: str, seed: int, cta: float, asr: float) -> dict:
    return {
        "key": f"toy/{row}/seed{seed}",
        "params": {"preset": "toy", "part": "distill", "row": row, "seed": seed, "quick": False},
        "result": {"cta": cta, "asr": asr, "asr_all": asr, "trigger_min": 1.0, "trigger_max": 2.0,
                   "trigger_updates": 160, "trigger_steps_mean": 200.0},
        "wall_s": 60.0,
    }  # fmt: skip


def test_cells_cover_rows_seeds_and_defences() -> None:
    args = argparse.Namespace(
        seeds=[0, 1], quick=False, preset="toy", extras=False, with_defences=True, iterations=None
    )
    keys = [c.key for c in cells_for(args)]
    assert len(keys) == 4 * 2 + 4 * 2 + 1 and len(set(keys)) == len(keys)
    assert "toy/doorping-valid/seed1" in keys and "toy/nc-control/seed0" in keys
    reduced = argparse.Namespace(**{**vars(args), "iterations": 7, "with_defences": False})
    cell = cells_for(reduced)[0]
    assert cell.key.startswith("toy-it7/") and cell_config(dict(cell.params))[0]["iterations"] == 7


def test_rows_resolve_to_the_preset_with_their_attack_and_bound() -> None:
    model, data = cell_config({"preset": "toy", "row": "doorping-valid", "seed": 2, "quick": False})
    assert model["attack"] == "doorping" and model["trigger"]["bound"] == "valid" and model["seed"] == 2
    assert model["trigger"]["max_steps"] == 200 and data["name"] == "digits"
    quick, _ = cell_config({"preset": "toy", "row": "clean", "seed": 0, "quick": True})
    assert quick["attack"] == "none" and quick["iterations"] == 5 and quick["evaluation"]["num_eval"] == 1


def test_checks_and_tables_from_records() -> None:
    records = [
        *(_record("clean", s, 0.85, 0.01) for s in range(3)),
        *(_record("naive", s, 0.85, 0.40) for s in range(3)),
        *(_record("doorping", s, 0.75, 1.0) for s in range(3)),
        *(_record("doorping-valid", s, 0.82, 0.05) for s in range(3)),
    ]
    results = {name: ok for name, _, _, ok in checks(by_row(records))}
    assert results["DOORPING (unclamped) ASR non-target ≥ 0.9"]
    assert not results["NAIVE ASR non-target ≤ 0.3"]
    assert results["DOORPING CTA − clean CTA ≥ −0.15"]
    tables = summarize(list(reversed(records)))  # order of the records does not matter
    main = tables["main"]
    assert main.rows[0][0] == "clean DC" and main.rows[2][3] == "1.000 ± 0.000"
    assert "clamped" in tables["text"] and "defences" not in tables


def test_mnist_reduced_preset_sets_the_trigger_and_stop_rule_for_every_row() -> None:
    for row in ("naive", "doorping", "doorping-valid"):
        model, data = cell_config({"preset": "mnist-reduced", "row": row, "seed": 1, "quick": False})
        assert data["name"] == "mnist-offline" and model["arch"] == "convnet_w32" and model["iterations"] == 8
        assert model["trigger"]["size"] == 8 and model["trigger"]["threshold_mode"] == "relative"
        assert model["evaluation"]["lr"] == 0.01 and model["dc"]["batch_real"] == 64
    faithful, _ = cell_config({"preset": "mnist-offline", "row": "doorping", "seed": 0, "quick": False})
    assert faithful["trigger"]["size"] == 2 and faithful["trigger"]["threshold_mode"] == "absolute"


def _defence_record(row: str, seed: int, asr: float, flagged: bool, far: float) -> dict:
    fp = {"pruned": {"cta": 0.8, "asr": asr}, "finetuned": {"cta": 0.8, "asr": asr / 2}}
    defences = {
        "before": {"cta": 0.8 + seed / 100, "asr": asr},
        "nc": {"anomaly_index": 1.0 + seed, "flagged": [0] if flagged else [], "target_flagged": flagged},
        "strip": {"far": far, "frr": 0.01},
        "range_check": {"detection_rate": 0.0},
        "fine_pruning": fp,
    }
    return {
        "key": f"toy/{row}/seed{seed}/defences",
        "params": {"preset": "toy", "part": "defences", "row": row, "seed": seed, "quick": False},
        "result": {"defences": defences},
        "wall_s": 1.0,
    }


def test_defence_means_aggregate_over_seeds_per_row() -> None:
    records = [
        _defence_record("naive", 0, 0.2, False, 0.9),
        _defence_record("naive", 1, 0.4, True, 0.7),
        _defence_record("doorping", 2, 1.0, False, 0.0),
    ]
    table = summarize(records)["defences_mean"]
    header = table.columns
    naive, doorping = table.rows
    assert naive[0] == "NAIVEATTACK" and naive[1] == "0,1" and doorping[1] == "2"
    assert naive[header.index("ASR")] == "0.300 ± 0.100"  # mean and population std of 0.2, 0.4
    assert naive[header.index("NC anomaly index")] == "1.500 ± 0.500"
    assert (
        naive[header.index("NC flags target")] == "1/2" and doorping[header.index("NC flags target")] == "0/1"
    )
    assert naive[header.index("STRIP FAR @ FRR 1 %")] == "0.800 ± 0.100"
    assert doorping[header.index("FP fine-tuned ASR")] == "0.500"


def test_active_neuron_row_gets_its_own_gates_next_to_the_official_ones() -> None:
    model, _ = cell_config({"preset": "mnist-reduced", "row": "doorping-active", "seed": 0, "quick": False})
    assert model["trigger"]["neuron_select"] == "active" and model["trigger"]["bound"] == "none"
    assert model["trigger"]["size"] == 8 and model["trigger"]["threshold_mode"] == "relative"
    official, _ = cell_config({"preset": "mnist-reduced", "row": "doorping", "seed": 0, "quick": False})
    assert official["trigger"].get("neuron_select", "weight") == "weight"
    records = [
        *(_record("naive", s, 0.8, 0.2) for s in range(3)),
        *(_record("doorping", s, 0.8, a) for s, a in enumerate((0.0, 1.0, 1.0))),
        *(_record("doorping-active", s, 0.8, 1.0) for s in range(3)),
    ]
    results = {name: (value, ok) for name, value, _, ok in checks(by_row(records))}
    assert not results["DOORPING (unclamped) ASR non-target ≥ 0.9"][1]  # the official gate is still reported
    assert results["DOORPING, active-neuron selection (ours), ASR ≥ 0.9"] == (1.0, True)
    value, ok = results["NAIVE ASR ≤ DOORPING (active-neuron) ASR − 0.5"]
    assert abs(value - (0.2 - 1.0)) < 1e-12 and ok


def test_dsa_rows_turn_on_dsa_in_distillation_and_evaluation_without_flip() -> None:
    for row, attack in (("clean-dsa", "none"), ("doorping-dsa", "doorping")):
        model, _ = cell_config({"preset": "toy", "row": row, "seed": 0, "quick": False})
        assert model["attack"] == attack and model["dc"]["dsa"] and model["evaluation"]["dsa"]
        assert "flip" not in model["dc"]["dsa_strategy"] and model["dc"]["outer_loop"] == 5
    plain, _ = cell_config({"preset": "toy", "row": "doorping", "seed": 0, "quick": False})
    assert not plain["dc"].get("dsa", False)


def test_extra_nets_of_a_saved_set_continue_the_cells_own_nets(tmp_path) -> None:
    """`--eval-nets`: net k scored from the saved files (``evaluation.first_net k``) is exactly net k of the
    distillation cell's own evaluation (seeded by index), so adding nets later equals evaluating more at once."""
    from doorping.runner import fit_and_test, merge, preset, score_saved

    config = preset("toy")
    model = merge(config["model"], {
        "iterations": 1, "ipc": 2, "trigger": {"max_steps": 2},
        "dc": {"outer_loop": 2, "inner_loop": 1, "batch_real": 32},
        "evaluation": {"num_eval": 2, "epochs": 4},
    })  # fmt: skip
    result, _, _ = fit_and_test(model, config["data"], tmp_path)
    again = score_saved(model, config["data"], tmp_path, first_net=1)
    assert again["per_net"] == [result["per_net"][1]] and again["first_net"] == 1
    assert score_saved(model, config["data"], tmp_path, first_net=0)["per_net"] == [result["per_net"][0]]


def test_extra_net_cells_and_their_merge_into_the_distillation_record() -> None:
    args = argparse.Namespace(seeds=[0, 1], quick=False, preset="mnist-reduced", extras=False, with_defences=False,
                              iterations=None, eval_nets=3)  # fmt: skip
    keys = [c.key for c in cells_for(args)]
    assert "mnist-reduced/clean/seed1/net1" in keys and "mnist-reduced/clean/seed1/net2" in keys
    assert not any(k.endswith("/net0") or k.endswith("/net3") for k in keys)  # the preset trains net 0 itself
    toy = argparse.Namespace(**{**vars(args), "preset": "toy", "eval_nets": 3})
    assert not any("/net" in c.key for c in cells_for(toy))  # the toy preset already trains 3 nets
    base = _record("clean", 0, 0.7, 0.0)
    base["result"]["per_net"] = [{"cta": 0.7, "asr": 0.0, "asr_all": 0.1}]
    extra = {"key": "toy/clean/seed0/net1", "params": {**base["params"], "part": "evaluate", "net": 1},
             "result": {"per_net": [{"cta": 0.8, "asr": 0.2, "asr_all": 0.3}]}, "wall_s": 1.0}  # fmt: skip
    (merged,) = by_row([extra, base])["clean"]
    assert merged["result"]["num_nets"] == 2 and abs(merged["result"]["cta"] - 0.75) < 1e-12
    assert abs(merged["result"]["asr"] - 0.1) < 1e-12 and abs(merged["result"]["asr_all"] - 0.2) < 1e-12
    assert "Evaluation nets per seed: clean DC 2" in summarize([extra, base])["text"]


def test_a_quick_saved_set_is_never_taken_for_a_full_one(tmp_path: Path) -> None:
    """`--quick` distils with another budget: its distilled.pt must not serve a full cell (or the reverse)."""
    from doorping.reproduce import cell_folder, saved_set

    full = {"preset": "toy", "row": "doorping", "seed": 0, "quick": False}
    quick = {**full, "quick": True}
    assert cell_folder(tmp_path, full) != cell_folder(tmp_path, quick)
    folder = cell_folder(tmp_path, {**quick, "part": "distill"})
    folder.mkdir(parents=True)
    (folder / "distilled.pt").write_bytes(b"")
    assert saved_set({**quick, "part": "evaluate", "net": 1}, tmp_path) == folder
    assert saved_set({**full, "part": "evaluate", "net": 1}, tmp_path) is None
    assert cell_folder(tmp_path, full).name == "toy-doorping-seed0"  # full runs keep their folder names
