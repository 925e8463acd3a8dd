"""Programmatic runs of the LightningModule (used by ``reproduce`` and ``defend``): preset → fit → test → numbers.

The same :class:`~doorping.module.DistillModule` and :class:`~doorping.data.DistillData` that ``doorping train``
builds from the command line, driven by a quiet Trainer, so a reproduction cell is exactly a ``distill`` run.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import yaml

from doorping.data import DistillData
from doorping.module import DistillModule
from paperlab_core.cli import resolve_config


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (``override`` wins), as LightningCLI applies stacked configs."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def preset(name: str) -> dict[str, Any]:
    """The ``model``/``data`` sections of a shipped preset applied on top of ``default`` (as ``--config NAME``)."""
    config = yaml.safe_load(Path(resolve_config("default", "doorping")).read_text())
    if name not in ("default", "toy"):
        config = merge(config, yaml.safe_load(Path(resolve_config(name, "doorping")).read_text()))
    return {"model": config.get("model", {}), "data": config.get("data", {})}


def _quiet_trainer(accelerator: str, folder: Path) -> Any:
    """The one-epoch, one-device Trainer of a reproduction cell: no logger, checkpoints, bars or sanity steps."""
    from pytorch_lightning import Trainer

    return Trainer(
        accelerator=accelerator, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, inference_mode=False, default_root_dir=str(folder),
        num_sanity_val_steps=0,
    )  # fmt: skip


def _test_scores(trainer: Any, module: DistillModule, data: DistillData) -> dict[str, Any]:
    """Score fresh nets on the distilled set (Trainer.test): mean CTA/ASR, each net's scores and the time."""
    start = time.perf_counter()
    scores: list[dict[str, float]] = []
    module.score_sink = scores
    (metrics,) = trainer.test(module, datamodule=data, verbose=False)
    return {
        "cta": metrics["test/cta"],
        "asr": metrics["test/asr"],
        "asr_all": metrics["test/asr_all"],
        "per_net": scores,
        "metrics": metrics,
        "eval_s": round(time.perf_counter() - start, 2),
    }


def fit_and_test(
    model_kwargs: dict[str, Any],
    data_kwargs: dict[str, Any],
    folder: Path,
    accelerator: str = "cpu",
    data: DistillData | None = None,
) -> tuple[dict[str, Any], DistillModule, DistillData]:
    """Distil (fit), write the artifacts into ``folder`` and score fresh nets (test); returns the numbers."""
    folder.mkdir(parents=True, exist_ok=True)
    module = DistillModule(**model_kwargs)
    data = data or DistillData(**data_kwargs)
    trainer = _quiet_trainer(accelerator, folder)
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    distill_s = time.perf_counter() - start
    scored = _test_scores(trainer, module, data)
    metrics = scored.pop("metrics")
    steps = [h["trigger_steps"] for h in module.history if h.get("trigger_updates")]
    result = {
        **{k: scored[k] for k in ("cta", "asr", "asr_all", "per_net")},
        "trigger_min": metrics.get("test/trigger_min"),
        "trigger_max": metrics.get("test/trigger_max"),
        "trigger_updates": int(sum(h.get("trigger_updates", 0) for h in module.history)),
        "trigger_steps_mean": float(sum(steps) / len(steps)) if steps else 0.0,
        "distill_s": round(distill_s, 2),
        "eval_s": scored["eval_s"],
    }
    return result, module, data


def score_saved(
    model_kwargs: dict[str, Any],
    data_kwargs: dict[str, Any],
    folder: Path,
    first_net: int,
    num_eval: int = 1,
    accelerator: str = "cpu",
) -> dict[str, Any]:
    """Score ``folder``'s saved ``distilled.pt`` (+ ``trigger.pt``) on evaluation nets ``first_net …`` only (the
    ``evaluate --distilled`` path): more nets for an earlier cell without distilling again."""
    trigger = folder / "trigger.pt"
    model = merge(model_kwargs, {"evaluation": {"num_eval": num_eval, "first_net": first_net}})
    module = DistillModule(
        **model,
        distilled=str(folder / "distilled.pt"),
        trigger_file=str(trigger) if trigger.is_file() else None,
    )
    scored = _test_scores(_quiet_trainer(accelerator, folder), module, DistillData(**data_kwargs))
    del scored["metrics"]
    return {**scored, "first_net": first_net, "distilled_from": str(folder)}
