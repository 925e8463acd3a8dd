"""TinyMIM: distilling MIM-pretrained ViTs into small ViTs (CVPR 2023)"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tinymim")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
