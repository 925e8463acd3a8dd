"""Robust lottery tickets for pre-trained language models (ACL 2022)"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("robust-tickets")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
