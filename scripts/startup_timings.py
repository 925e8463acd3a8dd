"""Start-up timings of every package CLI, written as a results record for the root README (issue #14, item 3).

For each package: the median wall time of 5 runs of ``<cli> --version``, ``<cli> --help`` and ``<cli> reproduce
--help`` (a package verb), whether ``torch`` was imported by ``--help``, and a ``python -X importtime`` summary of
``--help`` and of a Lightning verb's ``train --help`` (the heaviest top-level imports). Run it on an idle machine::

    uv run --frozen python scripts/startup_timings.py    # writes docs/startup.json, then renders README.md
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from paperlab_core.results import Table, render_readme, results_record
from paperlab_core.runtime import cpu_name

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def packages() -> list[tuple[str, str, str]]:
    """(folder, CLI name, entry module) of every package folder."""
    found = []
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        scripts = tomllib.loads(pyproject.read_text())["project"]["scripts"]
        cli, target = next(iter(scripts.items()))
        found.append((pyproject.parent.name, cli, target.split(":")[0]))
    return found


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Median wall seconds of ``RUNS`` runs (one warm-up run first, so the page cache is warm)."""
    subprocess.run(argv, env=env, capture_output=True, check=True)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def importtime(
    module: str, argv: list[str], env: dict[str, str]
) -> tuple[float, list[tuple[str, float]], bool]:
    """Total import seconds, the 3 heaviest top-level imports and whether torch was imported, for ``main(argv)``."""
    code = f"import sys; from {module} import main; sys.exit(main({argv!r}))"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True
    )
    top = []
    torch = False
    for match in LINE.finditer(done.stderr):
        name = match[4]
        torch |= name == "torch"
        if match[3] == " ":  # top level: one space of indentation
            top.append((name, int(match[2]) / 1e6))
    top.sort(key=lambda item: -item[1])
    return sum(seconds for _, seconds in top), top[:3], torch


def main() -> int:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PAPERLAB_THREADS": "1", "PAPERLAB_SHARED_DATA": "none"}
    startup = Table(
        ["package", "--version (s)", "--help (s)", "reproduce --help (s)", "torch imported by --help"],
        formats={"--version (s)": ".2f", "--help (s)": ".2f", "reproduce --help (s)": ".2f"},
        title=f"median of {RUNS} runs each",
    )
    imports = Table(
        ["package", "command", "imports (s)", "heaviest top-level imports (cumulative s)"],
        formats={"imports (s)": ".2f"},
    )
    for folder, cli, module in packages():
        exe = str(bin_dir / cli)
        _, _, torch = importtime(module, ["--help"], env)
        startup.add(
            cli, wall([exe, "--version"], env), wall([exe, "--help"], env),
            wall([exe, "reproduce", "--help"], env), "yes" if torch else "no",
        )  # fmt: skip
        for argv in (["--help"], ["train", "--help"]):
            total, top, _ = importtime(module, argv, env)
            heavy = ", ".join(f"{name} {seconds:.2f}" for name, seconds in top)
            imports.add(cli, f"{cli} {' '.join(argv)}", total, heavy)
        print(f"{folder}: {startup.rows[-1][1:]}", flush=True)
    record = results_record(
        "uv run --frozen python scripts/startup_timings.py",
        f"{cpu_name()}, {os.cpu_count()} cores, idle",
        None,
        {"startup": startup, "importtime": imports},
    )
    out = ROOT / "docs" / "startup.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    readme = ROOT / "README.md"
    readme.write_text(render_readme(readme))
    print(f"wrote {out.relative_to(ROOT)} and re-rendered README.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
