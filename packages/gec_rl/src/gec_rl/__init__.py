"""GEC: optimistic posterior sampling for interactive decision making, with an exact regret harness"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gec-rl")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "unknown"
