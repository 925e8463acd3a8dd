"""CCGC: cluster-guided contrastive graph clustering (AAAI 2023)"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ccgc")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
