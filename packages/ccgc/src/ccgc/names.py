"""The names the CLI offers (datasets, reproduce methods) and where dataset files are looked for.

Standard library only: ``ccgc.cli`` imports it for option choices, so ``ccgc VERB --help`` never imports torch.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

PLANETOID = {"cora": "Cora", "citeseer": "CiteSeer"}
PLANETOID_SUFFIXES = ("x", "y", "tx", "ty", "allx", "ally", "graph", "test.index")
ADGC = ("bat", "eat", "uat", "amap")
GENERATED = ("rpg", "sbm", "digits", "karate")
#: every ``--data.dataset`` value (``pyg`` also needs ``--data.path FILE``)
DATASETS = (*GENERATED, *PLANETOID, *ADGC, "pyg")

#: CCGC variants, named as their presets (each on Cora): ``stable`` (the package default model: zero_grad, L_pos =
#: mean over positive pairs), ``paper`` (zero_grad, the paper's L_pos = Σ/K) and ``legacy`` (official-code parity)
VARIANTS = ("stable", "paper", "legacy")
#: what ``ccgc reproduce --methods`` runs per dataset and seed: the three k-means baselines, a CCGC variant, SCGC
METHODS = ("kmeans", *VARIANTS, "scgc")
#: datasets ``ccgc sweep`` accepts (those with a Table 1 row); default the three air-traffic graphs
SWEEP_DATASETS = ("bat", "eat", "uat", "cora", "citeseer", "amap")


def int_list(text: str) -> list[int]:
    """``"1,2,3"`` or ``"1-5"`` (inclusive) → a list of non-negative integers."""
    if "-" in text and "," not in text:
        low, _, high = text.partition("-")
        if low.isdigit() and high.isdigit() and int(low) <= int(high):
            return list(range(int(low), int(high) + 1))
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all(item.isdigit() for item in items):
        raise argparse.ArgumentTypeError(f"{text!r} (expected non-negative integers: 1,2,3 or 1-5)")
    return [int(item) for item in items]


def float_list(text: str) -> list[float]:
    """``"1e-4,1e-3"`` → [0.0001, 0.001] (each positive)."""
    try:
        values = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} (expected positive numbers: 1e-4,1e-3)") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} (expected positive numbers: 1e-4,1e-3)")
    return values


def dims_list(text: str) -> list[str]:
    """``"500,D"`` → ["500", "D"]: positive integers or ``D`` (the input dimension of the dataset)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all(item == "D" or (item.isdigit() and int(item) > 0) for item in items):
        raise argparse.ArgumentTypeError(
            f"{text!r} (expected positive integers or D, the input dimension: 500,D)"
        )
    return items


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
