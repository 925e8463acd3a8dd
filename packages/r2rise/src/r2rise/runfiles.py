"""Reading the files of an ``r2rise explain`` run (numpy and json only: ``r2rise compare`` never imports torch)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from paperlab_core.errors import MissingFileError

RUN_FILES = ("maps.npz", "masks.npz", "summary.json")


def load_run(
    run_dir: str | os.PathLike[str], prefix: str = ""
) -> tuple[dict[str, np.ndarray], np.ndarray, dict]:
    """Maps, grids and summary of a saved run."""
    run = Path(run_dir)
    for name in RUN_FILES:
        if not (run / f"{prefix}{name}").is_file():
            raise MissingFileError("file", run / f"{prefix}{name}", "expected an `r2rise explain` run folder")
    with np.load(run / f"{prefix}maps.npz") as data:
        maps = {k: data[k] for k in data.files}
    with np.load(run / f"{prefix}masks.npz") as data:
        grids = data["grids"]
    return maps, grids, json.loads((run / f"{prefix}summary.json").read_text())
