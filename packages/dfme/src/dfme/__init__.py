"""DFME: dynamic facial micro-expression recognition benchmark"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dfme")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
