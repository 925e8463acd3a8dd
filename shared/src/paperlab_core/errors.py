"""Errors a user can cause, and the one-line report every CLI gives for them.

``UserError`` (and its subclasses) are mistakes the user can fix: a bad value, a missing file, an unknown name, a
checkpoint of the wrong kind. The CLIs print them as one line, ``<cli>: error: <what> (<what was expected>)``, and
exit 1 (runtime) or 2 (usage). Anything else is a bug: it is reported on one line as an internal error, and the
traceback is printed only with ``--debug`` or ``PAPERLAB_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable

DEBUG_ENV = "PAPERLAB_DEBUG"


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status 1."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """A bad or unknown configuration value (also a ``ValueError``)."""


class UsageError(ConfigError):
    """A malformed command line: unknown option, unparsable value, missing argument. Exit status 2."""

    exit_code = 2


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the command needs does not exist."""

    def __init__(self, what: str, path: str | os.PathLike[str], expected: str = "") -> None:
        self.path = path
        detail = f" ({expected})" if expected else ""
        super().__init__(f"{what} {path} does not exist{detail}")

    def __str__(self) -> str:  # FileNotFoundError would print errno/filename otherwise
        return str(self.args[0])


def debug_enabled(argv: list[str] | None = None) -> bool:
    """``--debug`` on the command line or ``PAPERLAB_DEBUG=1`` in the environment."""
    if os.environ.get(DEBUG_ENV, "").strip() not in {"", "0", "false", "no"}:
        return True
    return bool(argv) and "--debug" in argv


def one_line(message: str, limit: int = 400) -> str:
    """Collapse a message to one line (whitespace runs become one space), cut at ``limit`` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


SIGTERM_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process the signal killed
SIGTERM_MESSAGE = "stopped by SIGTERM before the command finished (the unfinished step wrote no record)"


def stopped_by_sigterm(error: BaseException) -> bool:
    """Lightning's ``SIGTERMException``: a ``SystemExit`` without a code that its loops raise after a SIGTERM.

    Left alone it would end the process with status 0, so a scheduler would count a killed job as a success. Matched
    by class name so that this module never imports Lightning.
    """
    return any(cls.__name__ == "SIGTERMException" for cls in type(error).__mro__)


def exit_code_for(error: BaseException) -> int:
    if isinstance(error, UserError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return 130
    return 1


def describe(error: BaseException) -> str:
    """The one-line text for ``error``: the message for user errors, type and message for anything else."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if isinstance(error, UserError):
        return one_line(str(error))
    if isinstance(error, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return one_line(f"{error.strerror or error}{where}")
    text = one_line(f"{type(error).__name__}: {error}")
    return f"internal error: {text} (run again with --debug for the traceback)"


def report(prog: str, error: BaseException, debug: bool = False) -> int:
    """Print ``error`` for ``prog`` on stderr (a traceback first when ``debug``); return the exit status."""
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__)
    print(f"{prog}: error: {describe(error)}", file=sys.stderr, flush=True)
    return exit_code_for(error)


def guarded(prog: str, func: Callable[[], int | None], argv: list[str] | None = None) -> int:
    """Run ``func``; turn any exception into the one-line report and an exit status."""
    debug = debug_enabled(argv)
    try:
        return int(func() or 0)
    except SystemExit as exc:  # argparse or a library that exits: keep its status
        if stopped_by_sigterm(exc):
            print(f"{prog}: error: {SIGTERM_MESSAGE}", file=sys.stderr, flush=True)
            return SIGTERM_EXIT
        code = exc.code
        if code is None or isinstance(code, int):
            return int(code or 0)
        print(f"{prog}: error: {one_line(str(code))}", file=sys.stderr, flush=True)
        return 1
    except BaseException as exc:
        return report(prog, exc, debug)
