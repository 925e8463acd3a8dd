"""paperlab: the thin shared layer under every paperlab package.

Modules: :mod:`paperlab.runtime` (device, precision, seeding, threads), :mod:`paperlab.logging` (run
directories, loggers, atomic ``metrics.json``, progress), :mod:`paperlab.cli` (LightningCLI builder with the
common verbs), :mod:`paperlab.data` (data roots, checksummed downloads, offline errors) and
:mod:`paperlab.testing` (pytest plugin: network guard, offline env, tiny-trainer defaults).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
