"""R2RISE: explaining imitation learning through demonstration frames"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("r2rise")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "unknown"
