"""One cross-validation fold trained and tested in-process — the step shared by ``dfme cv`` and ``dfme reproduce``
(the same LightningModule and DataModule as ``dfme train``; no run folder, no checkpoint)."""

from __future__ import annotations

import importlib.resources
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from paperlab_core.errors import ConfigError


def load_preset(config: str | None = None) -> dict[str, Any]:
    """``default.yaml`` with the preset (name or file) ``config`` merged on top (section by section)."""
    from paperlab_core.cli import resolve_config

    folder = importlib.resources.files("dfme") / "configs"
    merged: dict[str, Any] = yaml.safe_load((folder / "default.yaml").read_text(encoding="utf-8"))
    if config:
        extra = yaml.safe_load(Path(resolve_config(config, "dfme")).read_text(encoding="utf-8")) or {}
        for key, value in extra.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def linked(model: Mapping[str, Any], data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply the CLI's links: data.task / data.clip_input → model; model.name / model.imbalance → data."""
    model, data = dict(model), dict(data)
    model["task"] = data.get("task", "emotion")
    model["clip_input"] = data.get("clip_input", "frames")
    data["model_name"] = model.get("name", "r3d_18")
    data["balanced_sampler"] = model.get("imbalance", "ce") == "balanced_sampler"
    return model, data


def fit_fold(
    model_kwargs: Mapping[str, Any],
    data_kwargs: Mapping[str, Any],
    max_epochs: int,
    seed: int = 0,
    accelerator: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Train on the training subjects of ``data_kwargs['fold']`` and test on that fold: the module's test result
    (UF1/UAR/ACC + confusion, or AU metrics; sample ids, y_true, y_pred) and the wall time."""
    from pytorch_lightning import Trainer, seed_everything

    from dfme.data import DFMEDataModule
    from dfme.module import MERModule
    from paperlab_core.runtime import lightning_accelerator, select_precision

    model_kwargs, data_kwargs = linked(model_kwargs, data_kwargs)
    seed_everything(seed, workers=True)
    try:
        data = DFMEDataModule(**data_kwargs)
        module = MERModule(**model_kwargs)
    except TypeError as err:
        raise ConfigError(f"unknown setting: {err}") from None
    trainer = Trainer(
        accelerator=lightning_accelerator(accelerator) or "cpu",
        devices=1,
        precision=select_precision(accelerator),
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        default_root_dir=None,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    trainer.test(module, datamodule=data, verbose=False)
    result = dict(module.test_result or {})
    result["wall_s"] = round(time.perf_counter() - start, 2)
    result["align_status"] = data.processed.counts()["align_status"] if data.processed is not None else {}
    return result
