"""Result records and the tables rendered from them, so every README number can be traced to a file.

A results file (``results.json``, committed as ``packages/<pkg>/results/<name>.json``) holds the command that made
it, the git commit, the machine line, the seeds, the per-cell records and named :class:`Table` objects. A README
shows a table between markers::

    <!-- results: results/reproduce-quick.json table=main -->
    | ... rendered by render_block() ... |
    <!-- /results -->

``python -m paperlab_core.results render README.md`` rewrites every block from its file, and
``python -m paperlab_core.results check README.md`` (and the contract suite) fails on any difference.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "paperlab-results/1"
BLOCK = re.compile(
    r"(?P<open><!-- results: (?P<file>\S+?)(?: table=(?P<table>\S+?))? -->\n)(?P<body>.*?)(?P<close><!-- /results -->)",
    re.S,
)
REQUIRED_KEYS = ("command", "commit", "machine", "seeds", "tables")


@dataclass
class Table:
    """Columns, rows and per-column format specs (``{"ACC": ".2f"}``); rendered as a markdown table."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    title: str = ""

    def add(self, *cells: Any) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.columns)} columns")
        self.rows.append(list(cells))

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns, "rows": self.rows, "formats": self.formats, "title": self.title}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Table:
        return cls(list(data["columns"]), [list(r) for r in data.get("rows", [])], dict(data.get("formats", {})),
                   str(data.get("title", "")))  # fmt: skip

    def cell(self, column: str, value: Any) -> str:
        if value is None:
            return "–"
        spec = self.formats.get(column)
        if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
            return format(value, spec)
        return str(value)

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        for row in self.rows:
            lines.append(
                "| " + " | ".join(self.cell(c, v) for c, v in zip(self.columns, row, strict=True)) + " |"
            )
        return "\n".join(lines)


def package_paths(package: str) -> list[Path]:
    """The source folders whose changes matter for ``package``'s numbers: its own and paperlab_core's."""
    import importlib.util

    found = []
    for name in (package, "paperlab_core"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            found.append(Path(spec.origin).resolve().parent)
    return found


def git_commit(cwd: str | Path | None = None, paths: Sequence[str | Path] = ()) -> str:
    """``<sha>`` of HEAD (``<sha>+dirty`` when tracked files under ``paths`` — everywhere when empty — changed),
    or ``unknown`` outside a checkout.

    Looks in ``cwd`` (default: the working folder), then next to this file (an editable install in a checkout).
    """
    for folder in [cwd] if cwd else [None, Path(__file__).resolve().parent]:
        found = _git_commit(folder, paths)
        if found != "unknown":
            return found
    return "unknown"


def _git_commit(cwd: str | Path | None, paths: Sequence[str | Path] = ()) -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *map(str, paths)],
            cwd=cwd, capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def results_record(
    command: str,
    machine: str,
    seeds: Sequence[int] | None,
    tables: Mapping[str, Table],
    records: Sequence[Mapping[str, Any]] = (),
    package: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON document of a results file (``package`` limits the dirty check to its sources and the core's)."""
    return {
        "schema": SCHEMA,
        "command": command,
        "commit": git_commit(paths=package_paths(package) if package else ()),
        "machine": machine,
        "seeds": list(seeds) if seeds is not None else None,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
        "tables": {name: table.to_dict() for name, table in tables.items()},
        "records": list(records),
    }


def load_results(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path}: results file lacks {', '.join(missing)}")
    return data


def _short(commit: str) -> str:
    """12 hex digits, ``+dirty`` kept (made from uncommitted sources)."""
    return commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")


def _fields(machine: str) -> list[str]:
    return [field.strip() for field in machine.removeprefix("env: ").split(" | ") if field.strip()]


def machine_differences(machine: str, record_machines: Sequence[str]) -> list[str]:
    """Per distinct record machine line, the fields that differ from ``machine`` (the run that built the tables).

    ``["ccgc 0.2.0, paperlab-core 0.2.0"]`` says some cells ran with older versions; lines equal to ``machine`` drop out.
    """
    own = set(_fields(machine))
    differences = {", ".join(f for f in _fields(line) if f not in own) for line in record_machines}
    return sorted(d for d in differences if d)


def render_block(data: Mapping[str, Any], table: str | None = None, file: str = "") -> str:
    """The README text of one results block: the table and a provenance line."""
    tables = data["tables"]
    name = table or next(iter(tables))
    if name not in tables:
        raise KeyError(f"{file}: no table {name!r} (tables: {', '.join(tables)})")
    body = Table.from_dict(tables[name]).to_markdown()
    seeds = data.get("seeds")
    seed_text = f", seeds {','.join(map(str, seeds))}" if seeds else ""
    commit = str(data.get("commit", "unknown"))
    commit = _short(commit)
    if data.get("record_commits"):  # cells that ran at other commits than the one that built the tables
        commit += f" (cells run at {', '.join(_short(str(c)) for c in data['record_commits'])})"
    machine = str(data["machine"])
    others = machine_differences(machine, data.get("record_machines") or [])
    if others:  # merged cells that ran with other versions, threads or devices than the tables' run
        machine += f" (cells ran with: {'; '.join(others)})"
    return (
        f"{body}\n\n<sub>`{data['command']}` · commit {commit}{seed_text} · {machine} · "
        f"record `{file}`</sub>\n"
    )


def _blocks(readme: Path) -> list[re.Match[str]]:
    return list(BLOCK.finditer(readme.read_text(encoding="utf-8")))


def render_readme(readme: str | Path) -> str:
    """The README text with every results block re-rendered from its file (paths relative to the README)."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")

    def replace(match: re.Match[str]) -> str:
        data = load_results(readme.parent / match["file"])
        return match["open"] + render_block(data, match["table"], match["file"]) + match["close"]

    return BLOCK.sub(replace, text)


def check_readme(readme: str | Path) -> list[str]:
    """Differences between the README's results blocks and their files (empty when they agree)."""
    readme = Path(readme)
    problems = []
    for match in _blocks(readme):
        try:
            data = load_results(readme.parent / match["file"])
            expected = render_block(data, match["table"], match["file"])
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"{readme}: {err}")
            continue
        if match["body"] != expected:
            problems.append(f"{readme}: block for {match['file']} differs from its record (re-render it)")
    return problems


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] not in {"render", "check"}:
        print("usage: python -m paperlab_core.results {render,check} README.md [...]", file=sys.stderr)
        return 2
    status = 0
    for name in argv[1:]:
        if argv[0] == "render":
            Path(name).write_text(render_readme(name), encoding="utf-8")
            print(f"rendered {len(_blocks(Path(name)))} block(s) in {name}")
        else:
            for problem in check_readme(name):
                print(problem, file=sys.stderr)
                status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
