"""SemanticKITTI-C: LiDAR segmentation robustness benchmark, corruption toolkit and robust model"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lidar-robust")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
