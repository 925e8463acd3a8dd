"""The names the CLI offers (datasets, reproduce methods) and where dataset files are looked for.

Standard library only: ``ccgc.cli`` imports it for option choices, so ``ccgc VERB --help`` never imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer"}
PLANETOID_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
ADGC = ("bat", "eat", "uat", "amap")
GENERATED = ("rpg", "sbm", "digits", "karate")
#: every ``--data.dataset`` value (``pyg`` also needs ``--data.path FILE``)
DATASETS = (*GENERATED, *PLANETOID, *ADGC, "pyg")

#: CCGC variants, named as the presets: ``paper`` (package default: zero_grad, the paper's L_pos = Σ/K),
#: ``stable`` (zero_grad, per-pair mean of L_pos; preset ``stable``), ``legacy`` (official-code parity; preset
#: ``paper_legacy``)
VARIANTS = ("paper", "stable", "legacy")
#: what ``ccgc reproduce --methods`` runs per dataset and seed: the three k-means baselines, a CCGC variant, SCGC
METHODS = ("kmeans", *VARIANTS, "scgc")


def default_root(dataset: str) -> Path | None:
    """``../shared/data/{planetoid,adgc}`` when present, else the paperlab cache (Planetoid: ``None`` = download)."""
    from paperlab_core.data import find_shared_data, resolve_data_root

    key = dataset.lower()
    shared = find_shared_data()
    if shared is not None:
        sub = shared / ("planetoid" if key in PLANETOID else "adgc")
        if sub.is_dir():
            return sub
    if key in PLANETOID:
        cached = resolve_data_root(None, "ccgc") / "planetoid"
        return cached if (cached / PLANETOID[key] / "raw").is_dir() else None
    return resolve_data_root(None, "ccgc") / "adgc"


def dataset_root(dataset: str, root: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder a real dataset is read from.

    A given ``root`` must exist; its ``planetoid/`` (Cora, CiteSeer) or ``adgc/`` (BAT, EAT, UAT, AMAP) subfolder
    is used when present, so ``--data.root ../shared/data`` serves every dataset and ``--data.root
    ../shared/data/planetoid`` serves Cora. Without ``root``: :func:`default_root`.
    """
    if root is None:
        return default_root(dataset)
    from paperlab_core.data import require_dir

    folder = require_dir(
        root, "data root", "--data.root must be an existing folder holding the dataset files"
    )
    sub = folder / ("planetoid" if dataset.lower() in PLANETOID else "adgc")
    return sub if sub.is_dir() else folder
