"""A package's key experiment as a grid of cells, run whole, in shards, or merged from shard records.

``reproduce`` verbs describe their experiment as a list of :class:`Cell` (one dataset × method × seed, say), a
function that runs one cell and returns its numbers, and a function that turns the records into tables::

    def reproduce(args, run):
        cells = [Cell(f"{d}/{m}/seed{s}", {"dataset": d, "method": m, "seed": s}) for ...]
        return run_experiment(run, args, cells, run_cell, summarize)

``--shard K/N`` runs every N-th cell starting at the K-th and writes one record per cell under
``<out>/records/``; ``--merge DIR|JSON...`` reads the records of any set of folders and results files (a
committed ``results/<name>.json`` keeps its records) and builds the tables; with
neither, every cell runs and the tables are built at the end. Records already present in ``--out`` are reused,
so an interrupted run continues where it stopped (a record made with other parameters or ``settings`` is re-run);
``--cells P,...`` keeps the cells whose key starts with, or matches the shell pattern of, one of ``P``.
``summarize(records)`` returns ``{name: Table}`` (optionally with a ``"text"`` entry: markdown printed and written
to ``results.md`` after the tables). ``settings`` (optional) are the run-wide settings every cell depends on
(epochs, budgets, a checkpoint's hash): stored in each record and part of the reuse test, so a record made under
other settings is re-run rather than silently reused.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlab_core.errors import ConfigError, UsageError, UserError
from paperlab_core.results import Table, git_commit, package_paths, results_record
from paperlab_core.runtime import environment_line
from paperlab_core.verbs import Run

RECORDS = "records"


@dataclass(frozen=True)
class Cell:
    """One point of the experiment grid: a unique key and the parameters its run needs (JSON-serialisable)."""

    key: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return re.sub(r"[^A-Za-z0-9._=-]+", "_", self.key).strip("_") + ".json"


Record = dict[str, Any]
RunCell = Callable[[Cell], Mapping[str, Any]]
Summarize = Callable[[list[Record]], Mapping[str, Any]]


def shard_cells(cells: Sequence[Cell], shard: tuple[int, int] | None) -> list[Cell]:
    """The K-th of N interleaved slices (cells K-1, K-1+N, ...): balanced when cost varies along the grid."""
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ValueError("experiment cells must have unique keys")
    if shard is None:
        return list(cells)
    k, n = shard
    return list(cells)[k - 1 :: n]


def select_cells(cells: Sequence[Cell], patterns: Sequence[str] | None) -> list[Cell]:
    """The cells whose key starts with, or matches the shell pattern of, one of ``patterns`` (all when None)."""
    shard_cells(cells, None)  # unique keys
    if not patterns:
        return list(cells)
    chosen = [c for c in cells if any(c.key.startswith(p) or fnmatch.fnmatchcase(c.key, p) for p in patterns)]
    if not chosen:
        groups = sorted({c.key.split("/")[0] for c in cells})
        raise UsageError(
            f"--cells {','.join(patterns)} matches no cell of this grid "
            f"(keys start with {', '.join(groups)}; e.g. {cells[0].key if cells else '-'})"
        )
    return chosen


def load_records(sources: Sequence[str | Path]) -> list[Record]:
    """Every record under ``<folder>/records/`` (or ``<folder>`` itself), or in a results file's ``records``.

    A results file (``results.json``, a committed ``results/<name>.json``) carries the records its tables were
    built from, so a committed table can be extended: ``--merge packages/<pkg>/results/x.json new-shard/``.
    A key seen twice must agree.
    """
    found: dict[str, Record] = {}
    for source in sources:
        for path, record in _records_of(Path(source)):
            key = record["key"]
            if key in found and found[key]["result"] != record["result"]:
                raise UserError(f"record {key!r} appears twice with different results ({path})")
            found[key] = record
    return list(found.values())


def _is_record(value: Any) -> bool:
    return isinstance(value, dict) and "key" in value and "result" in value


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"record {path} is not valid JSON ({err.msg})") from None


def _records_of(base: Path) -> list[tuple[Path, Record]]:
    """(path, record) pairs of a records folder, a run folder, a results file or one record file."""
    if base.is_file():
        data = _read_json(base)
        records = data.get("records") if isinstance(data, dict) and not _is_record(data) else [data]
        if not isinstance(records, list) or not records or not all(map(_is_record, records)):
            raise UserError(f"{base} holds no records (expected a results file with records, or a record)")
        return [(base, record) for record in records]
    directory = base / RECORDS if (base / RECORDS).is_dir() else base
    files = sorted(directory.glob("*.json"))
    if not files:
        raise UserError(
            f"no records in {directory} (expected the records/ folder of a reproduce --shard run)"
        )
    # results.json or other files sitting next to the records are skipped
    return [(path, record) for path in files if _is_record(record := _read_json(path))]


def _write_record(
    folder: Path,
    cell: Cell,
    result: Mapping[str, Any],
    run: Run,
    times: tuple[float, float],
    commit: str,
    settings: Mapping[str, Any] | None = None,
) -> Record:
    from paperlab_core.logging import write_json_atomic

    record: Record = {
        "key": cell.key,
        "params": dict(cell.params),
        "result": dict(result),
        "wall_s": round(times[0], 3),
        "cpu_s": round(times[1], 3),  # this process's CPU time, all threads (a load-independent cost)
        "command": run.command,
        "machine": environment_line(run.env),
        "commit": commit,
    }
    if settings is not None:
        record["settings"] = _plain(settings)
    write_json_atomic(folder / RECORDS / cell.filename, record)
    return record


def _package_commit(run: Run) -> str:
    """The commit the package's sources are at now (``+dirty`` when they differ from it)."""
    return git_commit(paths=package_paths(run.package) if run.package else ())


def _plain(mapping: Mapping[str, Any]) -> Any:
    """``mapping`` as it reads back from JSON (paths and other objects as strings, tuples as lists)."""
    return json.loads(json.dumps(dict(mapping), default=str))


def _existing(folder: Path, cell: Cell, settings: Mapping[str, Any] | None = None) -> Record | None:
    """A record of ``cell`` already in ``folder`` — only if it was made with the same parameters and settings."""
    path = folder / RECORDS / cell.filename
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # a damaged record is re-run, not trusted
    same_params = record.get("params") == _plain(cell.params)
    same_settings = settings is None or record.get("settings") == _plain(settings)
    return record if record.get("key") == cell.key and same_params and same_settings else None


def _seeds(records: Sequence[Record], args: argparse.Namespace) -> list[int] | None:
    seeds = {
        r["params"]["seed"] for r in records if isinstance(r.get("params"), dict) and "seed" in r["params"]
    }
    if seeds:
        return sorted(seeds)
    return getattr(args, "seeds", None)


def write_summary(run: Run, args: argparse.Namespace, records: list[Record], summarize: Summarize) -> dict:
    """Build the tables from ``records`` and write ``results.json`` and ``results.md`` in the run folder."""
    summary = dict(summarize(records))
    text = summary.pop("text", "")
    tables = {name: table for name, table in summary.items() if isinstance(table, Table)}
    extra = {k: v for k, v in summary.items() if not isinstance(v, Table)}
    machines = sorted({str(r["machine"]) for r in records if r.get("machine")})
    if machines and machines != [environment_line(run.env)]:  # merged records keep where they ran
        extra.setdefault("record_machines", machines)
    commits = sorted({str(r["commit"]) for r in records if r.get("commit")})
    if commits and commits != [_package_commit(run)]:  # records made at other commits (merged, or a long run)
        extra.setdefault("record_commits", commits)
    document = results_record(
        run.command,
        environment_line(run.env),
        _seeds(records, args),
        tables,
        records,
        package=run.package,
        **extra,
    )
    markdown = [f"# {run.prog} {run.verb}", "", f"`{run.command}`", ""]
    for name, table in tables.items():
        markdown += [f"## {table.title or name}", "", table.to_markdown(), ""]
    if text:
        markdown += [text, ""]
    run.write_json("results.json", document)
    run.write_text("results.md", "\n".join(markdown))
    print("\n".join(markdown))
    return {"results": str(run.path("results.json")), "cells": len(records)}


def _run_in_jobs(run: Run, args: argparse.Namespace, jobs: int, cells: int) -> None:
    """Run the grid as ``jobs`` shard processes writing into this run folder (:mod:`paperlab_core.jobs`)."""
    from paperlab_core.jobs import run_jobs

    assert run.dir is not None
    jobs = min(jobs, max(cells, 1))
    run.log(
        f"{run.prog} {run.verb}: {cells} cell(s) in {jobs} parallel job(s), records in {run.dir / RECORDS}"
    )
    # the children write their own config.yaml and metrics.json into the folder: keep the parent's
    saved = {name: run.dir / name for name in ("config.yaml", "metrics.json")}
    before = {name: path.read_bytes() for name, path in saved.items() if path.is_file()}
    try:
        run_jobs(run.prog, run.verb, run.argv, run.dir, jobs, getattr(args, "threads", None) is not None)
    finally:
        for name, path in saved.items():
            if name in before:
                path.write_bytes(before[name])
            else:
                path.unlink(missing_ok=True)


def run_experiment(
    run: Run,
    args: argparse.Namespace,
    cells: Sequence[Cell],
    run_cell: RunCell,
    summarize: Summarize,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (a shard of) the grid or merge records, as the ``--shard``/``--merge``/``--cells`` options ask."""
    if run.dir is None:
        raise RuntimeError("run_experiment needs a verb declared with a run folder")
    merge = getattr(args, "merge", None)
    shard = getattr(args, "shard", None)
    if merge and shard:
        raise ConfigError("--merge and --shard exclude each other (merge the folders the shards wrote)")
    patterns = getattr(args, "cells", None)
    if merge:
        records = load_records(merge)
        if patterns:
            keys = {c.key for c in select_cells([Cell(str(r["key"])) for r in records], patterns)}
            records = [r for r in records if r["key"] in keys]
        run.log(f"{run.prog} {run.verb}: merging {len(records)} records from {len(merge)} source(s)")
        return write_summary(run, args, records, summarize)
    todo = shard_cells(select_cells(cells, patterns), shard)
    jobs = getattr(args, "jobs", None) or 1
    if jobs > 1:
        if shard is not None:
            raise ConfigError("--jobs and --shard exclude each other (--jobs N runs N shards itself)")
        _run_in_jobs(run, args, jobs, len(todo))
    commit = _package_commit(run)  # the sources this process imported (later edits do not change what runs)
    records: list[Record] = []
    for index, cell in enumerate(todo, 1):
        existing = _existing(run.dir, cell, settings)
        if existing is not None:
            if jobs == 1:
                run.log(f"[{index}/{len(todo)}] {cell.key}: record found, skipped")
            records.append(existing)
            continue
        stale = (run.dir / RECORDS / cell.filename).is_file()
        run.log(
            f"[{index}/{len(todo)}] {cell.key}"
            + (" (its record has other parameters or settings: re-run)" if stale else "")
        )
        start, cpu = time.perf_counter(), time.process_time()
        result = run_cell(cell)
        times = (time.perf_counter() - start, time.process_time() - cpu)
        records.append(_write_record(run.dir, cell, result, run, times, commit, settings))
    if shard is not None:
        k, n = shard
        run.log(
            f"{run.prog} {run.verb}: shard {k}/{n} wrote {len(records)} record(s) to {run.dir / RECORDS}; "
            f"build the tables with `{run.prog} {run.verb} --merge DIR...`"
        )
        return {"shard": f"{k}/{n}", "cells": len(records)}
    return write_summary(run, args, records, summarize)
