"""The verb helper: option types, parsing errors as one line, run folders, and the reproduce grid."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from paperlab_core import errors, experiment, verbs
from paperlab_core.results import Table, render_block


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0,1,2", [0, 1, 2]), ("0-4", [0, 1, 2, 3, 4]), ("7", [7]), ("3,0-1,3", [3, 0, 1])],
)
def test_seed_list(text: str, expected: list[int]) -> None:
    assert verbs.seed_list(text) == expected


@pytest.mark.parametrize("text", ["", "a", "4-2", "-1", "1,,x"])
def test_seed_list_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="seed"):
        verbs.seed_list(text)


def test_shard_spec_and_lists() -> None:
    assert verbs.shard_spec("2/8") == (2, 8)
    for bad in ("0/3", "4/3", "x", "1/2/3"):
        with pytest.raises(argparse.ArgumentTypeError):
            verbs.shard_spec(bad)
    parse = verbs.comma_list(("a", "b"))
    assert parse("a, b") == ["a", "b"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown 'c'"):
        parse("a,c")


@pytest.mark.parametrize(("text", "expected"), [("1e-3", 1e-3), ("0.5", 0.5), (" 2 ", 2.0)])
def test_positive_float(text: str, expected: float) -> None:
    assert verbs.positive_float(text) == expected


@pytest.mark.parametrize("text", ["0", "-1e-3", "nan", "x", ""])
def test_positive_float_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="positive number"):
        verbs.positive_float(text)


def test_option_dest_and_overrides() -> None:
    assert verbs.DATA_ROOT.dest == "data_root"
    assert verbs.option("--max-queries", type=int).dest == "max_queries"
    seeds = verbs.SEEDS.but(default=[0, 1, 2])
    assert seeds.default == [0, 1, 2] and verbs.SEEDS.default is None


def test_parser_errors_are_usage_errors(tmp_path: Path) -> None:
    verb = verbs.Verb("demo", "x:y", "a demo", (verbs.SEEDS, verbs.CKPT, verbs.THREADS))
    parser = verbs.build_parser("pkg demo", verb)
    with pytest.raises(
        errors.UsageError, match=r"the following arguments are required: --ckpt .*pkg demo --help"
    ):
        parser.parse_args([])
    with pytest.raises(errors.UsageError, match=r"argument --ckpt: file .*missing.ckpt does not exist"):
        parser.parse_args(["--ckpt", str(tmp_path / "missing.ckpt")])
    ckpt = tmp_path / "a.ckpt"
    ckpt.write_bytes(b"")
    with pytest.raises(errors.UsageError, match="argument --threads: expected a positive integer"):
        parser.parse_args(["--ckpt", str(ckpt), "--threads", "0"])
    args = parser.parse_args(["--ckpt", str(ckpt), "--seeds", "0-2"])
    assert args.seeds == [0, 1, 2] and args.ckpt == ckpt and args.threads is None


def test_guarded_turns_exceptions_into_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def fail(error: BaseException) -> None:
        raise error

    assert errors.guarded("pkg", lambda: fail(errors.UsageError("bad\nvalue"))) == 2
    assert capsys.readouterr().err == "pkg: error: bad value\n"
    assert (
        errors.guarded("pkg", lambda: fail(errors.MissingFileError("data root", "/x", "expected a folder")))
        == 1
    )
    assert capsys.readouterr().err == "pkg: error: data root /x does not exist (expected a folder)\n"
    assert errors.guarded("pkg", lambda: fail(KeyError("k"))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError" in err and "--debug" in err
    assert errors.guarded("pkg", lambda: fail(RuntimeError("x")), ["--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_guarded_reports_lightning_sigterm_as_a_failure(capsys: pytest.CaptureFixture[str]) -> None:
    """Lightning turns SIGTERM into ``SIGTERMException(SystemExit)`` with no code, i.e. exit status 0."""
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    def stop() -> None:
        raise SIGTERMException

    assert SIGTERMException().code is None  # what makes the plain exit status 0
    assert errors.guarded("pkg", stop) == 143
    assert capsys.readouterr().err == f"pkg: error: {errors.SIGTERM_MESSAGE}\n"
    # an ordinary exit keeps its status, with or without a code
    assert errors.guarded("pkg", lambda: (_ for _ in ()).throw(SystemExit(3))) == 3
    assert errors.guarded("pkg", lambda: (_ for _ in ()).throw(SystemExit())) == 0
    assert capsys.readouterr().err == ""


def test_sigterm_during_a_real_fit_exits_143(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """End to end: a SIGTERM that reaches a running ``Trainer.fit`` ends the guarded command with 143, not 0."""
    import os
    import signal

    import pytorch_lightning as pl
    import torch

    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            if batch_idx == 1:
                os.kill(os.getpid(), signal.SIGTERM)  # handled by Lightning's signal connector
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert errors.guarded("pkg", lambda: trainer.fit(Model(), data)) == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert trainer.global_step < 4  # stopped early, not at the end of the epoch
    assert errors.SIGTERM_MESSAGE in capsys.readouterr().err


def _grid_run(tmp_path: Path, out: str, argv: list[str]) -> verbs.Run:
    return verbs.Run("demo", "0.1", "demo", "reproduce", argv, tmp_path / out, {"python": "3"})


def _cells() -> list[experiment.Cell]:
    return [experiment.Cell(f"n{n}/seed{s}", {"n": n, "seed": s}) for n in (1, 2, 3) for s in (0, 1)]


def _summarize(records: list[dict]) -> dict:
    table = Table(["n", "total"], formats={"total": ".1f"})
    for n in sorted({r["params"]["n"] for r in records}):
        table.add(n, sum(r["result"]["value"] for r in records if r["params"]["n"] == n))
    return {"main": table, "text": "done"}


def test_shards_merge_to_the_full_table(tmp_path: Path) -> None:
    calls: list[str] = []

    def run_cell(cell: experiment.Cell) -> dict:
        calls.append(cell.key)
        return {"value": cell.params["n"] * 10 + cell.params["seed"]}

    ns = argparse.Namespace(shard=None, merge=None, seeds=None)
    for k in (1, 2, 3):
        run = _grid_run(tmp_path, f"s{k}", ["--shard", f"{k}/3"])
        run.dir.mkdir()
        out = experiment.run_experiment(
            run, argparse.Namespace(shard=(k, 3), merge=None), _cells(), run_cell, _summarize
        )
        assert out == {"shard": f"{k}/3", "cells": 2}
    assert sorted(calls) == sorted(c.key for c in _cells())  # every cell ran exactly once
    merged = _grid_run(tmp_path, "merged", ["--merge"])
    merged.dir.mkdir()
    experiment.run_experiment(
        merged, argparse.Namespace(shard=None, merge=[tmp_path / f"s{k}" for k in (1, 2, 3)]), [], run_cell,
        _summarize,
    )  # fmt: skip
    full = _grid_run(tmp_path, "full", [])
    full.dir.mkdir()
    experiment.run_experiment(full, ns, _cells(), run_cell, _summarize)
    tables = [json.loads((tmp_path / f / "results.json").read_text())["tables"] for f in ("merged", "full")]
    assert tables[0] == tables[1]
    assert tables[0]["main"]["rows"] == [[1, 21], [2, 41], [3, 61]]
    document = json.loads((tmp_path / "full" / "results.json").read_text())
    assert document["seeds"] == [0, 1] and len(document["records"]) == 6
    assert "done" in (tmp_path / "full" / "results.md").read_text()


def test_a_committed_results_file_merges_with_new_shards(tmp_path: Path) -> None:
    """``--merge results.json new-shard/`` extends a committed table without its record folders."""

    def run_cell(cell: experiment.Cell) -> dict:
        return {"value": cell.params["n"] * 10 + cell.params["seed"]}

    first = _grid_run(tmp_path, "first", [])
    first.dir.mkdir()
    experiment.run_experiment(first, argparse.Namespace(shard=None, merge=None, cells=["n1", "n2"]), _cells(),
                              run_cell, _summarize)  # fmt: skip
    committed = tmp_path / "committed.json"  # as copied into packages/<pkg>/results/
    committed.write_text((first.dir / "results.json").read_text())
    rest = _grid_run(tmp_path, "rest", [])
    rest.dir.mkdir()
    experiment.run_experiment(rest, argparse.Namespace(shard=None, merge=None, cells=["n3"]), _cells(), run_cell,
                              _summarize)  # fmt: skip
    merged = _grid_run(tmp_path, "merged", ["--merge"])
    merged.dir.mkdir()
    experiment.run_experiment(merged, argparse.Namespace(shard=None, merge=[committed, rest.dir]), [], run_cell,
                              _summarize)  # fmt: skip
    document = json.loads((merged.dir / "results.json").read_text())
    assert document["tables"]["main"]["rows"] == [[1, 21], [2, 41], [3, 61]]
    assert len(document["records"]) == 6
    one = tmp_path / "one.json"  # a single record file is a source too
    one.write_text(json.dumps(document["records"][0]))
    assert experiment.load_records([one]) == document["records"][:1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tables": {}, "records": []}))
    with pytest.raises(errors.UserError, match="bad.json holds no records"):
        experiment.load_records([bad])


def test_existing_records_are_reused(tmp_path: Path) -> None:
    calls: list[str] = []

    def run_cell(cell: experiment.Cell) -> dict:
        calls.append(cell.key)
        if cell.key == "n3/seed1" and len(calls) < 7:
            raise RuntimeError("interrupted")
        return {"value": 1}

    run = _grid_run(tmp_path, "r", [])
    run.dir.mkdir()
    ns = argparse.Namespace(shard=None, merge=None)
    with pytest.raises(RuntimeError, match="interrupted"):
        experiment.run_experiment(run, ns, _cells(), run_cell, _summarize)
    assert len(calls) == 6
    experiment.run_experiment(run, ns, _cells(), run_cell, _summarize)
    assert calls[6:] == ["n3/seed1"]  # the five finished cells were not run again


def test_merge_refuses_conflicting_records_and_empty_folders(tmp_path: Path) -> None:
    run = _grid_run(tmp_path, "a", [])
    for name, value in (("a", 1), ("b", 2)):
        folder = tmp_path / name / "records"
        folder.mkdir(parents=True)
        (folder / "k.json").write_text(json.dumps({"key": "k", "params": {}, "result": {"v": value}}))
    with pytest.raises(errors.UserError, match="appears twice with different results"):
        experiment.load_records([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(errors.UserError, match="no records in"):
        experiment.load_records([tmp_path / "empty"])
    with pytest.raises(errors.ConfigError, match="exclude each other"):
        experiment.run_experiment(
            run, argparse.Namespace(shard=(1, 2), merge=[tmp_path]), [], dict, _summarize
        )


def test_records_with_other_parameters_are_not_reused(tmp_path: Path) -> None:
    calls: list[str] = []

    def run_cell(cell: experiment.Cell) -> dict:
        calls.append(cell.key)
        return {"value": cell.params["n"]}

    run = _grid_run(tmp_path, "r", [])
    run.dir.mkdir()
    ns = argparse.Namespace(shard=None, merge=None)
    experiment.run_experiment(run, ns, [experiment.Cell("k", {"n": 1, "seed": 0})], run_cell, _summarize)
    experiment.run_experiment(run, ns, [experiment.Cell("k", {"n": 1, "seed": 0})], run_cell, _summarize)
    assert calls == ["k"]
    experiment.run_experiment(run, ns, [experiment.Cell("k", {"n": 2, "seed": 0})], run_cell, _summarize)
    assert calls == ["k", "k"]
    rows = json.loads((tmp_path / "r" / "results.json").read_text())["tables"]["main"]["rows"]
    assert rows == [[2, 2]]


def test_merged_records_keep_the_commit_they_ran_at(tmp_path: Path) -> None:
    run = _grid_run(tmp_path, "s", [])
    run.dir.mkdir()
    ns = argparse.Namespace(shard=None, merge=None)
    experiment.run_experiment(run, ns, _cells()[:2], lambda cell: {"value": 1}, _summarize)
    records = sorted((run.dir / "records").glob("*.json"))
    now = json.loads(records[0].read_text())["commit"]
    assert now  # each record names the commit its cell ran at
    first = json.loads(records[0].read_text())
    assert first["cpu_s"] >= 0 and first["wall_s"] >= 0
    old = json.loads(records[1].read_text())
    old["commit"] = "a" * 40 + "+dirty"  # as if this cell had run at an older, modified checkout
    records[1].write_text(json.dumps(old))
    merged = _grid_run(tmp_path, "m", ["--merge"])
    merged.dir.mkdir()
    experiment.run_experiment(
        merged, argparse.Namespace(shard=None, merge=[run.dir]), [], dict, _summarize
    )  # fmt: skip
    document = json.loads((merged.dir / "results.json").read_text())
    assert "a" * 40 + "+dirty" in document["record_commits"]
    block = render_block(document)
    assert "cells run at " in block and f"{'a' * 12}+dirty" in block


def test_cells_filter_runs_and_merges_a_subset(tmp_path: Path) -> None:
    calls: list[str] = []

    def run_cell(cell: experiment.Cell) -> dict:
        calls.append(cell.key)
        return {"value": cell.params["n"]}

    run = _grid_run(tmp_path, "c", ["--cells", "n2,*seed1"])
    run.dir.mkdir()
    experiment.run_experiment(
        run,
        argparse.Namespace(shard=None, merge=None, cells=["n2", "*seed1"]),
        _cells(),
        run_cell,
        _summarize,
    )
    # prefix n2 keeps both n2 cells, the pattern *seed1 adds n1/seed1 and n3/seed1
    assert sorted(calls) == ["n1/seed1", "n2/seed0", "n2/seed1", "n3/seed1"]
    merged = _grid_run(tmp_path, "m", ["--merge"])
    merged.dir.mkdir()
    experiment.run_experiment(
        merged, argparse.Namespace(shard=None, merge=[run.dir], cells=["n3"]), [], run_cell, _summarize
    )
    document = json.loads((merged.dir / "results.json").read_text())
    assert [r["key"] for r in document["records"]] == ["n3/seed1"]
    with pytest.raises(errors.UsageError, match="matches no cell.*keys start with n1, n2, n3"):
        experiment.select_cells(_cells(), ["seed"])


def test_records_made_under_other_settings_are_re_run(tmp_path: Path) -> None:
    calls: list[str] = []

    def run_cell(cell: experiment.Cell) -> dict:
        calls.append(cell.key)
        return {"value": 1}

    run = _grid_run(tmp_path, "r", [])
    run.dir.mkdir()
    ns = argparse.Namespace(shard=None, merge=None)
    cells = [experiment.Cell("k", {"n": 1})]
    experiment.run_experiment(run, ns, cells, run_cell, _summarize, settings={"epochs": 5, "out": Path("/x")})
    experiment.run_experiment(run, ns, cells, run_cell, _summarize, settings={"epochs": 5, "out": Path("/x")})
    assert calls == ["k"]  # same settings (a Path compares by its JSON text): reused
    experiment.run_experiment(
        run, ns, cells, run_cell, _summarize, settings={"epochs": 20, "out": Path("/x")}
    )
    assert calls == ["k", "k"]
    record = json.loads((run.dir / "records" / "k.json").read_text())
    assert record["settings"] == {"epochs": 20, "out": "/x"}
    (run.dir / "records" / "k.json").write_text("{truncated")  # a damaged record is re-run, not a traceback
    experiment.run_experiment(
        run, ns, cells, run_cell, _summarize, settings={"epochs": 20, "out": Path("/x")}
    )
    assert calls == ["k", "k", "k"]


def test_a_package_option_replaces_the_shared_one_of_the_same_name() -> None:
    own = verbs.option("--cells", type=int, default=3, help="the package's own meaning")
    verb = verbs.Verb("reproduce", "x:y", "demo", (*verbs.REPRODUCE_OPTIONS, own))
    parser = verbs.build_parser("demo", verb)
    assert parser.parse_args([]).cells == 3 and parser.parse_args(["--cells", "5"]).cells == 5
    shared = verbs.build_parser("demo", verbs.Verb("reproduce", "x:y", "demo", verbs.REPRODUCE_OPTIONS))
    assert shared.parse_args(["--cells", "a,b*"]).cells == ["a", "b*"]


def test_jobs_child_command_lines_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--jobs N`: each child drops --jobs/--out/--shard (either spelling) and gets its own shard and the parent's
    folder; threads are split over the jobs unless chosen (the end-to-end run: gec_rl's reproduce tests)."""
    from paperlab_core import jobs

    argv = ["--quick", "--jobs", "3", "--out=/x", "--cells", "a,b", "--shard", "1/9", "--jobs=3", "--threads", "2"]  # fmt: skip
    assert jobs.child_argv(argv, 2, 3, Path("/run")) == [
        "--quick", "--cells", "a,b", "--threads", "2", "--shard", "2/3", "--out", "/run",
    ]  # fmt: skip
    monkeypatch.delenv("PAPERLAB_THREADS", raising=False)
    monkeypatch.setattr(jobs.os, "cpu_count", lambda: 8)
    assert jobs.child_env(3, threads_given=False)["PAPERLAB_THREADS"] == "2"
    assert jobs.child_env(16, threads_given=False)["PAPERLAB_THREADS"] == "1"
    assert "PAPERLAB_THREADS" not in jobs.child_env(3, threads_given=True)
    monkeypatch.setenv("PAPERLAB_THREADS", "5")
    assert jobs.child_env(3, threads_given=False)["PAPERLAB_THREADS"] == "5"
    assert jobs.main(["no-such-command-xyz"]) == 2
