"""``dfme cv``: subject-independent k-fold cross-validation with per-fold and concatenated UF1/UAR/ACC."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from dfme.folds import fit_fold, load_preset
from dfme.metrics import aggregate_folds
from paperlab_core.errors import ConfigError
from paperlab_core.logging import log
from paperlab_core.verbs import Run


def cv(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    preset = load_preset(args.config)
    model, data = dict(preset.get("model", {})), dict(preset.get("data", {}))
    epochs = args.trainer_max_epochs or preset.get("trainer", {}).get("max_epochs", 8)
    for value, section, key in (
        (args.model_name, model, "name"), (args.model_imbalance, model, "imbalance"),
        (args.data_sampling, data, "sampling"), (args.data_task, data, "task"),
        (str(args.data_root) if args.data_root else None, data, "root"),
    ):  # fmt: skip
        if value is not None:
            section[key] = value
    data["n_folds"] = args.folds
    folds = list(range(args.folds))
    if args.run_folds:
        try:
            folds = sorted({int(f) for f in args.run_folds})
        except ValueError:
            raise ConfigError(f"--run-folds takes fold numbers, got {','.join(args.run_folds)}") from None
        if not all(0 <= f < args.folds for f in folds):
            raise ConfigError(f"--run-folds must lie in 0..{args.folds - 1}")
    seeds = args.seeds or [preset.get("seed_everything", 0)]
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        results = []
        for fold in folds:
            log(f"dfme cv: seed {seed}, fold {fold + 1}/{args.folds}")
            result = fit_fold(model, {**data, "fold": fold}, epochs, seed, run.accelerator)
            results.append(result)
            if data.get("task", "emotion") == "emotion":
                log(
                    f"dfme cv: fold {fold}: UF1 {result['uf1']:.3f} UAR {result['uar']:.3f} ACC {result['acc']:.3f}"
                )
        runs.append({"seed": seed, "folds": results})
    summary = summarize_runs(runs, data.get("task", "emotion"))
    run.write_json(
        "cv.json", {"model": model, "data": data, "epochs": epochs, "runs": runs, "summary": summary}
    )
    return {"cv": summary}


def summarize_runs(runs: list[dict[str, Any]], task: str) -> dict[str, Any]:
    """Per seed: concatenated and per-fold-mean metrics; then their mean and std over seeds."""
    per_seed = []
    for item in runs:
        if task == "emotion":
            pairs = [(f["y_true"], f["y_pred"]) for f in item["folds"]]
            per_seed.append(aggregate_folds(pairs))
        else:
            per_seed.append(
                {"per_fold": {"macro_f1": float(np.mean([f["macro_f1"] for f in item["folds"]]))}}
            )
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
    for mode in per_seed[0]:
        for key in per_seed[0][mode]:
            values = [p[mode][key] for p in per_seed]
            out[f"{mode}/{key}"] = {
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "values": values,
            }
    return out
