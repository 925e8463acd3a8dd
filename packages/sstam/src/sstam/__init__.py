"""SSTAM: saliency-aware spatio-temporal artifact measurement for compressed video"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sstam")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
