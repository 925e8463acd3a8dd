"""DOORPING: backdoor attacks against dataset distillation (NAIVEATTACK, DOORPING; NDSS 2023)"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("doorping")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
