"""paperlab-core: the thin shared layer under every paperlab package.

Modules: :mod:`~paperlab_core.cli` (the entry point builder: Lightning verbs and package verbs, one-line errors),
:mod:`~paperlab_core.verbs` (the verb helper and the shared option names), :mod:`~paperlab_core.experiment`
(``reproduce`` grids with ``--shard``/``--merge``), :mod:`~paperlab_core.results` (records and the README tables
rendered from them), :mod:`~paperlab_core.runtime` (accelerator, precision, TF32, threads, seeding, the environment
line), :mod:`~paperlab_core.logging` (run folders, atomic writers), :mod:`~paperlab_core.data` (data roots,
checksummed downloads, offline errors), :mod:`~paperlab_core.errors`, :mod:`~paperlab_core.offline` and
:mod:`~paperlab_core.testing` (pytest plugin). Importing this package does not import torch.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("paperlab-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without installing
    __version__ = "0+unknown"

__all__ = ["__version__"]
