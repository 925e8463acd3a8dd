"""BOLT: bootstrap own latent of transformer, self-supervised ViTs for medical image classification"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bolt-ssl")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"
