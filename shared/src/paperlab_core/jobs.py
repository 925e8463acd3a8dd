"""``reproduce --jobs N``: the grid run as N child processes of the same command, one ``--shard k/N`` each.

Each child is the package's own command line (found by its console-script name) with ``--jobs`` dropped and
``--shard k/N --out <the parent's run folder>`` added, so every record lands in one ``records/`` folder and an
interrupted run continues like any other (records already there are reused). The parent then builds the tables
from those records. Children print their lines prefixed with ``[job k/N]``. Without ``--threads`` (and without
``$PAPERLAB_THREADS``) each child gets ``cpu_count // N`` threads, so N jobs do not oversubscribe the cores.
Small CPU models gain more from N one-thread processes than from one N-thread process (intra-op threading of
small convolutions scales poorly).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from paperlab_core.cli import drop_flag
from paperlab_core.errors import UserError

#: options that the children get from the parent (and so are dropped from its command line)
_REPLACED = ("--jobs", "--out", "--shard")


def child_argv(argv: Sequence[str], k: int, n: int, out: Path) -> list[str]:
    """``argv`` without ``--jobs``/``--out``/``--shard`` (``--x V`` or ``--x=V``), plus ``--shard k/n --out out``."""
    kept = list(argv)
    for name in _REPLACED:
        kept = drop_flag(kept, name)
    return [*kept, "--shard", f"{k}/{n}", "--out", str(out)]


def child_env(n: int, threads_given: bool) -> dict[str, str]:
    """The children's environment: ``PAPERLAB_THREADS = cpu_count // n`` unless threads were chosen."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # their lines reach the parent as they are printed
    if not threads_given and not env.get("PAPERLAB_THREADS"):
        env["PAPERLAB_THREADS"] = str(max(1, (os.cpu_count() or 1) // n))
    return env


def _forward(stream: IO[str], sink: IO[str], prefix: str) -> None:
    for line in stream:
        sink.write(prefix + line)
        sink.flush()


def run_jobs(prog: str, verb: str, argv: Sequence[str], out: Path, n: int, threads_given: bool) -> None:
    """Run ``prog verb argv`` as ``n`` shard processes writing into ``out``; raise if any of them fails."""
    env = child_env(n, threads_given)
    procs: list[subprocess.Popen[str]] = []
    pumps: list[threading.Thread] = []
    try:
        for k in range(1, n + 1):
            command = [
                sys.executable,
                "-m",
                "paperlab_core.jobs",
                prog,
                *verb.split(),
                *child_argv(argv, k, n, out),
            ]
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, bufsize=1
            )
            procs.append(proc)
            for stream, sink in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):
                pump = threading.Thread(target=_forward, args=(stream, sink, f"[job {k}/{n}] "), daemon=True)
                pump.start()
                pumps.append(pump)
        codes = [proc.wait() for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
        for pump in pumps:
            pump.join(timeout=5)
    failed = [(k, code) for k, code in enumerate(codes, 1) if code != 0]
    if failed:
        which = ", ".join(f"{k}/{n} (exit {code})" for k, code in failed)
        raise UserError(
            f"{prog} {verb} --jobs {n}: job {which} failed (its error is above); the records written so far are "
            f"in {out / 'records'}: the same command continues from them"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m paperlab_core.jobs PROG ARGS...``: run the console script ``PROG`` with ``ARGS``."""
    from importlib.metadata import entry_points

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m paperlab_core.jobs PROG [ARGS...]", file=sys.stderr)
        return 2
    prog, rest = args[0], args[1:]
    found = list(entry_points(group="console_scripts", name=prog))
    if not found:
        print(f"paperlab_core.jobs: error: no installed command {prog!r}", file=sys.stderr)
        return 2
    return int(found[0].load()(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
