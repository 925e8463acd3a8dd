"""The command line: presets, bad input, the verbs end to end on tiny budgets (spec §6.10, §6.11, §6.19)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml
from doorping.cli import main

TINY = [
    "--model.iterations", "2", "--model.dc.outer_loop", "2", "--model.dc.inner_loop", "2",
    "--model.trigger.max_steps", "10", "--model.evaluation.num_eval", "2", "--model.evaluation.epochs", "30",
    "--trainer.enable_progress_bar", "false",
]  # fmt: skip


def call(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code or 0
    return int(code), out.getvalue(), err.getvalue()


def runs(tmp_path: Path) -> list[Path]:
    base = tmp_path / "runs" / "doorping"
    return sorted(base.iterdir()) if base.exists() else []


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    return tmp_path


def test_paper_preset_resolves_to_the_official_defaults(in_tmp: Path) -> None:
    code, out, err = call(["train", "--config", "paper-cifar10-dc", "--print_config"])
    assert code == 0, err
    model = yaml.safe_load(out)["model"]
    assert (model["method"], model["arch"], model["ipc"], model["iterations"]) == ("dc", "convnet", 10, 1000)
    assert model["dc"]["outer_loop"] is None and model["dc"]["inner_loop"] is None  # get_loops(10) = 10/50
    assert model["dc"]["init"] == "noise" and model["dc"]["lr_img"] == 0.1 and model["dc"]["lr_net"] == 0.01
    t = model["trigger"]
    assert (t["portion"], t["size"], t["alpha"], t["topk"], t["layer"], t["max_steps"]) == (
        0.01,
        2,
        10.0,
        1,
        -2,
        1000,
    )
    assert t["bound"] == "none"
    e = model["evaluation"]
    assert (e["lr"], e["epochs"], e["num_eval"]) == (0.01, 300, 10)
    from doorping.config import Settings, TriggerConfig

    settings = Settings(ipc=model["ipc"], trigger=TriggerConfig())
    settings.dc.outer_loop = settings.dc.inner_loop = None
    assert settings.loops() == (10, 50)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--model.trigger.size", "8"], "does not fit"),
        (["train", "--model.trigger.portion", "1.5"], "portion"),
        (["train", "--model.trigger.target", "12"], "out of range"),
        (["train", "--model.trigger.bound", "box:1"], "trigger.bound"),
        (["train", "--model.ipc", "7", "--model.dc.outer_loop", "null"], "ipc 7"),
        (["distill", "--attack", "nonsense"], "attack"),
        (["distill", "--dsa", "true", "--model.dc.dsa_strategy", "color_blur"], "dsa_strategy"),
        (["train", "--trainer.devices", "2"], "at most 1 device"),
    ],
)
def test_bad_settings_fail_in_one_line_and_leave_no_run_folder(
    in_tmp: Path, args: list[str], needle: str
) -> None:
    code, _, err = call(args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and "Traceback" not in err
    assert lines[-1].startswith("doorping: error: ") and needle in lines[-1], err
    assert runs(in_tmp) == []


def test_corrupt_saved_sets_fail_in_one_line(in_tmp: Path) -> None:
    bad = in_tmp / "distilled.pt"
    bad.write_bytes(b"not a torch file")
    code, _, err = call(["evaluate", "--distilled", str(bad)])
    assert code == 1 and err.strip().splitlines()[-1].startswith("doorping: error: ")
    assert str(bad) in err
    torch.save({"images": torch.zeros(2, 1, 8, 8)}, bad)
    code, _, err = call(["evaluate", "--distilled", str(bad)])
    assert code == 1 and "lacks field" in err
    assert runs(in_tmp) == []


def test_distill_writes_artifacts_and_evaluate_reproduces_them(in_tmp: Path) -> None:
    """Criterion 10: the saved set and trigger re-evaluated by `evaluate` (checkpoint and files) give the same
    CTA/ASR (seeded nets: identical; the spec allows |Δ| ≤ 0.05)."""
    code, _, err = call(["distill", "--method", "dc", "--attack", "doorping", "--model.trigger.keep_trajectory", "true",
                         "--model.trigger.threshold", "0", *TINY])  # fmt: skip
    assert code == 0, err
    (run,) = runs(in_tmp)
    for name in (
        "distilled.pt",
        "distilled.png",
        "trigger.pt",
        "trigger.png",
        "trigger_scaled.png",
        "metrics.json",
    ):
        assert (run / name).is_file(), name
    first = json.loads((run / "metrics.json").read_text())["test"]
    kept = sorted((run / "trajectory").glob("trigger_it*.pt")) if (run / "trajectory").exists() else []
    assert first["test/trajectory_kept"] == len(kept)
    assert all(torch.load(p, weights_only=True)["asr"] > 0.95 for p in kept)
    trigger = torch.load(run / "trigger.pt", weights_only=True)
    assert trigger["kind"] == "patch" and trigger["bound"] == "none" and len(trigger["poison_indices"]) == 12
    distilled = torch.load(run / "distilled.pt", weights_only=True)
    assert distilled["images"].shape == (100, 1, 8, 8) and distilled["method"] == "dc"

    code, _, err = call(
        [
            "evaluate",
            "--ckpt",
            str(run / "checkpoints" / "last.ckpt"),
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    assert code == 0, err
    code, _, err = call(["evaluate", "--distilled", str(run / "distilled.pt"), "--trigger", str(run / "trigger.pt"),
                         *TINY[6:]])  # fmt: skip
    assert code == 0, err
    evaluated = [json.loads((p / "metrics.json").read_text())["test"] for p in runs(in_tmp) if p != run]
    assert len(evaluated) == 2
    for again in evaluated:
        for key in ("test/cta", "test/asr", "test/asr_all"):
            assert abs(again[key] - first[key]) <= 0.05, (key, again[key], first[key])


@pytest.mark.parametrize("method", ["dd", "dm"])
def test_distill_dd_and_dm_with_doorping_finish_in_fast_dev_mode(in_tmp: Path, method: str) -> None:
    code, _, err = call(
        ["distill", "--method", method, "--attack", "doorping", "--trainer.fast_dev_run", "true"]
    )
    assert code == 0, err
    (run,) = runs(in_tmp)
    assert (run / "trigger.pt").is_file() and "test" in json.loads((run / "metrics.json").read_text())


def test_distill_with_dsa_runs_end_to_end(in_tmp: Path) -> None:
    """``distill --dsa true`` reaches the DC loop (renamed flag → ``model.dc.dsa``) and DSA-trained evaluation."""
    code, _, err = call(
        ["distill", "--dsa", "true", "--model.evaluation.dsa", "true", "--trainer.fast_dev_run", "true"]
    )
    assert code == 0, err
    (run,) = runs(in_tmp)
    config = torch.load(run / "distilled.pt", weights_only=False)["config"]
    assert config["dc"]["dsa"] is True and config["evaluation"]["dsa"] is True


def test_invisible_under_dc_runs(in_tmp: Path) -> None:
    """The official DC code crashes on --invisible (missing topk); here it runs."""
    code, _, err = call(["distill", "--attack", "invisible", "--trainer.fast_dev_run", "true"])
    assert code == 0, err
    (run,) = runs(in_tmp)
    assert torch.load(run / "trigger.pt", weights_only=True)["kind"] == "additive"


def test_defend_writes_its_report(in_tmp: Path) -> None:
    code, _, err = call(["distill", "--attack", "doorping", *TINY])
    assert code == 0, err
    (run,) = runs(in_tmp)
    out = in_tmp / "defence"
    code, _, err = call(["defend", "--distilled", str(run / "distilled.pt"), "--trigger", str(run / "trigger.pt"),
                         "--defence", "range-check", "--quick", "--out", str(out)])  # fmt: skip
    assert code == 0, err
    report = json.loads((out / "defence.json").read_text())
    assert set(report) >= {"before", "range_check", "n_clean"} and report["n_clean"] == 50
    assert 0.0 <= report["range_check"]["detection_rate"] <= 1.0
    # the victim's weights were saved; auditing them as an external model gives the same victim numbers
    victim = out / "victim.pt"
    saved = torch.load(victim, weights_only=True)
    assert saved["arch"] == "toy" and saved["dataset"] == "digits"
    audit = in_tmp / "audit"
    code, _, err = call(["defend", "--victim", str(victim), "--trigger", str(run / "trigger.pt"),
                         "--defence", "range-check", "--quick", "--out", str(audit)])  # fmt: skip
    assert code == 0, err
    again = json.loads((audit / "defence.json").read_text())
    assert again["before"] == report["before"] and again["range_check"] == report["range_check"]
    assert not (audit / "victim.pt").exists()
    # a bare state dict needs --arch and --dataset; with them it is the same model
    bare = in_tmp / "bare.pt"
    torch.save(saved["state_dict"], bare)
    code, _, err = call(["defend", "--victim", str(bare), "--defence", "range-check", "--quick"])
    assert code != 0 and "Traceback" not in err and "pass --arch and --dataset" in err.splitlines()[-1], err
    code, _, err = call(["defend", "--victim", str(bare), "--arch", "toy", "--dataset", "digits",
                         "--trigger", str(run / "trigger.pt"), "--defence", "range-check", "--quick",
                         "--out", str(in_tmp / "bare_audit")])  # fmt: skip
    assert code == 0, err
    assert json.loads((in_tmp / "bare_audit" / "defence.json").read_text())["before"] == report["before"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--arch", "convnet_w32", "--dataset", "digits"], "do not fit a convnet_w32 network"),
        (["--arch", "toy", "--dataset", "digits", "--distilled", "VICTIM"], "exactly one of"),
        (["--arch", "resnet", "--dataset", "digits"], "unknown architecture"),
    ],
)
def test_defend_victim_bad_input_fails_in_one_line(in_tmp: Path, args: list[str], needle: str) -> None:
    from doorping.networks import build_network

    weights = in_tmp / "w.pt"
    torch.save(build_network("toy", 1, 10, (8, 8), seed=0).state_dict(), weights)
    args = [str(weights) if a == "VICTIM" else a for a in args]
    code, _, err = call(["defend", "--victim", str(weights), "--defence", "range-check", "--quick", *args])
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and "Traceback" not in err
    assert lines[-1].startswith("doorping: error: ") and needle in lines[-1], err
    assert runs(in_tmp) == []


def test_reproduce_iterations_option_reaches_the_experiment(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import doorping.reproduce as rep

    seen: dict = {}

    def fake(args, run) -> dict:
        seen["iterations"] = args.iterations
        return {}

    monkeypatch.setattr(rep, "reproduce", fake)
    code, _, err = call(
        ["reproduce", "--preset", "mnist-reduced", "--iterations", "32", "--out", str(in_tmp / "r")]
    )
    assert code == 0, err
    assert seen == {"iterations": 32}
    code, _, err = call(["reproduce", "--iterations", "0"])
    assert code != 0 and "Traceback" not in err and "--iterations" in err
