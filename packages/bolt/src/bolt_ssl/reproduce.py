"""``bolt reproduce``: BOLT vs scratch / pixel BYOL / token-BYOL / MAE at several label fractions (spec §5).

Grid (one :class:`~paperlab_core.experiment.Cell` each): ``floors/seed<s>`` (majority class and pixel logistic
regression), ``<method>/seed<s>`` (pre-train once, cached under ``<out>/pretrain/``, then fine-tune and linear-probe
at every label fraction on the labelled subset of seed s — the same images for every method), and with
``--sweep`` the "what was tried" BOLT variants (pre-trained once with seed 0, fine-tuned on the label draws of
seeds 0..2 at the lowest fraction). Tables are built from the records alone (``--merge`` works).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.errors import ConfigError
from paperlab_core.experiment import Cell, Record, run_experiment
from paperlab_core.results import Table
from paperlab_core.verbs import Run

DATASETS = ("retinamnist", "breastmnist", "digits", "synthetic-retina")
INITS = ("scratch", "byol", "token_byol", "mae", "bolt")
#: pre-trainings with an EMA target encoder (``backbone_target.pt``); scratch and MAE have one encoder
TARGET_METHODS = ("byol", "token_byol", "bolt")
#: ``--branch``: which encoder of a BYOL-family pre-training goes downstream (ours; the papers use the online one)
BRANCHES = ("online", "target")
BRANCH_NAMES = {"online": "online", "target": "EMA target"}
METRICS = ("accuracy", "macro_f1", "auc_ovr", "qwk")
METRIC_NAMES = {"accuracy": "acc", "macro_f1": "macro-F1", "auc_ovr": "AUC", "qwk": "QWK"}
METHOD_NAMES = {"scratch": "scratch (random init)", "byol": "pixel BYOL", "token_byol": "token-BYOL (λ=0)",
                "mae": "MAE", "bolt": "BOLT (λ=0.5)"}  # fmt: skip
#: "what was tried" (spec §5.1 item 10): one factor at a time from the default BOLT configuration
SWEEP = {
    "default": ("BOLT defaults (the seed-0 backbone of the main grid)", {}),
    "pool+4000": ("pool 1,080 + 4,000 synthetic-retina, equal optimiser steps", {"pool_extra": 4000}),
    "epochs×3": ("3× the pre-training epochs", {"epochs_factor": 3}),
    "s_max=0.4": ("perturbation strength s_max 0.4 (default 0.8)", {"model": {"perturb": {"s_max": 0.4}}}),
    "image_aug=independent": (
        "independent image augmentation per view",
        {"model": {"image_aug": "independent"}},
    ),
    "λ=1.0": ("ranking weight λ = 1.0", {"model": {"rank": {"weight": 1.0}}}),
}
QUICK_SWEEP = ("default", "s_max=0.4")


# --------------------------------------------------------------------------------------------- setup
def _dataset_plan(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Preset, data overrides, label specs and notes for ``--dataset`` (with the offline fallback)."""
    from bolt_ssl.data import find_medmnist

    dataset = args.dataset
    notes: list[str] = []
    root = str(args.data_root) if args.data_root else args.shared_data
    if args.shared_data and not args.data_root:
        root = str(Path(args.shared_data) / "medmnist")
    if dataset in ("retinamnist", "breastmnist") and find_medmnist(dataset, 28, root) is None:
        if not args.quick:
            from bolt_ssl.data import load_medmnist

            load_medmnist(dataset, 28, root, None, False)  # raises the one-line missing-file error
        notes.append(
            f"{dataset}.npz not found: --quick fell back to synthetic-retina (generated, not DR data)"
        )
        run.log(notes[-1])
        dataset = "synthetic-retina"
    preset = {"retinamnist": "retinamnist", "breastmnist": "retinamnist", "digits": "digits",
              "synthetic-retina": "default"}[dataset]  # fmt: skip
    data = {"name": dataset, "root": root if dataset in ("retinamnist", "breastmnist") else None}
    model: dict[str, Any] = {"vit": {"in_chans": 1}} if dataset == "breastmnist" else {}
    if dataset == "digits":
        labels = [("k", 1), ("k", 3), ("k", 10)]
    else:
        fractions = args.fractions or ([0.01, 1.0] if args.quick else [0.01, 0.1, 1.0])
        labels = [("f", f) for f in fractions]
    return {
        "dataset": dataset,
        "preset": preset,
        "data": data,
        "model": model,
        "labels": labels,
        "notes": notes,
    }


def method_cells(
    methods: list[str], seeds: list[int], shape: dict[str, Any], branches: list[str]
) -> list[Cell]:
    """``<method>/seed<s>`` (online encoder; the params of records made before ``--branch`` existed) and, for the
    BYOL-family methods when ``target`` is asked, ``<method>-target/seed<s>`` with ``branch: target`` in its params:
    records of the two encoders never share a key, a row or a paired comparison. scratch and MAE have no target
    encoder: they keep their single one (one cell, whatever ``--branch`` says)."""
    cells = []
    for m in methods:
        for b in branches:
            if b == "target" and m not in TARGET_METHODS:
                if "online" not in branches:  # its single encoder, once
                    cells += [
                        Cell(f"{m}/seed{s}", {"kind": "method", "method": m, "seed": s, **shape})
                        for s in seeds
                    ]
                continue
            suffix, extra = ("", {}) if b == "online" else ("-target", {"branch": "target"})
            cells += [
                Cell(f"{m}{suffix}/seed{s}", {"kind": "method", "method": m, "seed": s, **shape, **extra})
                for s in seeds
            ]
    return cells


def backbone_file(folder: Path, branch: str) -> Path:
    """The encoder file of a cached pre-training: ``backbone.pt`` (online) or ``backbone_target.pt`` (EMA target);
    a target asked of a cache without one (written before 0.4.0, or MAE) is a one-line error."""
    from bolt_ssl.module import BACKBONE_FILE, TARGET_BACKBONE_FILE

    if branch == "online":
        return folder / BACKBONE_FILE
    path = folder / TARGET_BACKBONE_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path}: --branch target needs the EMA target encoder, which this cached pre-training lacks "
            "(pre-trainings written before bolt-ssl 0.4.0 have only backbone.pt); re-run it or use --branch online"
        )
    return path


def _branch(record: Record) -> str:
    return str(record["params"].get("branch", "online"))


def _label_key(kind: str, value: float) -> str:
    return f"k={int(value)}" if kind == "k" else f"{100 * value:g}%"


def _pretrain_config(
    plan: dict[str, Any], method: str, epochs: int, seed: int, variant: dict[str, Any]
) -> dict:
    """The resolved pre-training configuration (preset + plan + variant), JSON-able."""
    from bolt_ssl.presets import deep_merge, load_preset

    config = load_preset(plan["preset"])
    config = deep_merge(
        config, {"model": plan["model"], "data": {k: v for k, v in plan["data"].items() if v}}
    )
    config = deep_merge(config, {"model": {"method": method, "seed": seed}, "data": {"seed": 0}})
    config = deep_merge(config, {"model": variant.get("model", {})})
    if variant.get("pool_extra"):
        config["data"]["pool_extra"] = variant["pool_extra"]
    config["epochs"] = epochs * int(variant.get("epochs_factor", 1))
    return config


def _equal_steps_epochs(config: dict[str, Any], base_pool: int, epochs: int) -> int:
    """Epochs that give the pool-extended run the optimiser steps of the default run (drop_last batches)."""
    batch = int(config["data"].get("batch_size", 128))
    steps = (base_pool // batch) * epochs
    per_epoch = (base_pool + int(config["data"].get("pool_extra", 0))) // batch
    return max(1, int(round(steps / max(per_epoch, 1))))


# --------------------------------------------------------------------------------------------- one pre-training
def pretrain(
    config: dict[str, Any], folder: Path, accelerator: str, log: Any, cached_only: bool = False
) -> dict[str, Any]:
    """Pre-train (or reuse ``folder/backbone.pt`` and ``pretrain_metrics.json``); return the summary.

    ``cached_only`` (``--probe-only``): never train; a missing cache or one with another configuration is an error.
    """
    import json

    from bolt_ssl.module import BACKBONE_FILE, PRETRAIN_METRICS, BoltData, module_from_config

    done = folder / PRETRAIN_METRICS
    stamp = folder / "reproduce_config.json"
    wanted = json.dumps(config, sort_keys=True, default=str)
    if (folder / BACKBONE_FILE).is_file() and done.is_file():
        if stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
            log(f"  pre-training cached: {folder}")
            return json.loads(done.read_text(encoding="utf-8"))
    if cached_only:
        raise ConfigError(
            f"{folder}: --probe-only needs a cached pre-training with this configuration "
            f"({BACKBONE_FILE}, {PRETRAIN_METRICS} and reproduce_config.json); run without --probe-only first"
        )
    if (folder / BACKBONE_FILE).is_file() and done.is_file():
        log(f"  pre-training in {folder} has another (or no recorded) configuration: re-run")
        done.unlink()
    import pytorch_lightning as pl

    from paperlab_core.logging import progress_bar_callback
    from paperlab_core.runtime import seed_everything, select_precision

    # weights, dropout and batch order follow the cell's seed alone, not the RNG state earlier cells left behind
    seed_everything(int(config["model"].get("seed", 0)))
    module = module_from_config(config["model"])
    data = BoltData(**config["data"])
    folder.mkdir(parents=True, exist_ok=True)
    trainer = pl.Trainer(
        max_epochs=int(config["epochs"]), accelerator=accelerator, devices=1, precision=select_precision(accelerator),
        logger=False, enable_checkpointing=False, enable_model_summary=False, default_root_dir=str(folder),
        num_sanity_val_steps=0, callbacks=[progress_bar_callback()], log_every_n_steps=10,
    )  # fmt: skip
    trainer.fit(module, datamodule=data)
    stamp.write_text(wanted, encoding="utf-8")
    return json.loads(done.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------- downstream
def _downstream(init_spec: str, init_name: str, plan: dict[str, Any], labels: list[tuple[str, float]], seeds: list[int],
                device: Any, protocol: Any, log: Any, probe_only: bool = False,
                branch: str = "online") -> dict[str, Any]:  # fmt: skip
    """Fine-tune (unless ``probe_only``) and linear-probe ``init_spec`` on the label subsets of ``seeds``."""
    from bolt_ssl.data import Split, label_subset, load_dataset
    from bolt_ssl.metrics import classification_metrics
    from bolt_ssl.presets import data_config, deep_merge, load_preset, vit_config
    from bolt_ssl.protocols import (
        build_backbone,
        check_fits,
        downstream_stats,
        features,
        finetune,
        load_init,
        predict_proba,
        probe_predict,
    )

    preset = deep_merge(load_preset(plan["preset"]), {"model": plan["model"], "data": plan["data"]})
    data = load_dataset(data_config(preset, pool_extra=0))
    init = load_init(init_spec, vit_config(preset))
    mean, std = downstream_stats(data)
    out: dict[str, Any] = {}
    for kind, value in labels:
        key = _label_key(kind, value)
        out[key] = {}
        for seed in seeds:
            idx = label_subset(data.train.labels, data.n_classes, data.task, seed,
                               fraction=value if kind == "f" else None, k=int(value) if kind == "k" else None)  # fmt: skip
            train = Split(data.train.images[idx], data.train.labels[idx])
            probe_net = build_backbone(init, seed, device)
            check_fits(probe_net, data)
            kind = protocol.probe_features
            val_x = (
                features(probe_net, data.val.images, mean, std, kind=kind)
                if protocol.probe == "val"
                else None
            )
            (prob,), c = probe_predict(features(probe_net, train.images, mean, std, kind=kind), train.labels, val_x,
                                       data.val.labels, [features(probe_net, data.test.images, mean, std, kind=kind)],
                                       data.task, data.n_classes, protocol)  # fmt: skip
            lp = {**classification_metrics(data.test.labels, prob, data.task, data.n_classes), "probe_c": c}
            cell: dict[str, Any] = {"n_labelled": int(len(idx)),
                                    "indices": "all" if len(idx) == len(data.train) else idx.tolist(),
                                    "linear_probe": lp}  # fmt: skip
            if not probe_only:
                model = finetune(build_backbone(init, seed, device), train, data.task, data.n_classes, mean, std,
                                 protocol, seed)  # fmt: skip
                cell["finetune"] = classification_metrics(
                    data.test.labels, predict_proba(model, data.test.images, data.task, mean, std),
                    data.task, data.n_classes,
                )  # fmt: skip
                cell["finetune_val"] = classification_metrics(
                    data.val.labels, predict_proba(model, data.val.images, data.task, mean, std),
                    data.task, data.n_classes,
                )  # fmt: skip
            out[key][str(seed)] = cell
            ft = f"ft {_brief(cell['finetune'], data.task)} | " if "finetune" in cell else ""
            name = init_name if branch == "online" else f"{init_name} ({BRANCH_NAMES[branch]})"
            log(f"  {name} {key} seed {seed}: {ft}lp {_brief(lp, data.task)} (C {c:g})")
    return {"dataset": data.name, "task": data.task, "data_md5": data.md5, "data_official": data.official,
            "n_train": len(data.train), "n_test": len(data.test), "labels": out,
            "protocol": {**protocol.to_dict(), "init": init_name, "probe_only": probe_only, "branch": branch}}  # fmt: skip


def _brief(metrics: dict[str, Any], task: str) -> str:
    key = "qwk" if task == "ordinal" else "accuracy"
    return f"{key} {metrics[key]:.3f}"


def _floors(
    plan: dict[str, Any], labels: list[tuple[str, float]], seed: int, protocol: Any
) -> dict[str, Any]:
    from bolt_ssl.data import label_subset, load_dataset
    from bolt_ssl.metrics import classification_metrics
    from bolt_ssl.presets import data_config, deep_merge, load_preset
    from bolt_ssl.protocols import majority_proba, pixel_features, probe_predict

    preset = deep_merge(load_preset(plan["preset"]), {"model": plan["model"], "data": plan["data"]})
    data = load_dataset(data_config(preset, pool_extra=0))
    out: dict[str, Any] = {}
    test_px = pixel_features(data.test.images)
    for kind, value in labels:
        idx = label_subset(data.train.labels, data.n_classes, data.task, seed,
                           fraction=value if kind == "f" else None, k=int(value) if kind == "k" else None)  # fmt: skip
        y = data.train.labels[idx]
        major = classification_metrics(data.test.labels, majority_proba(y, len(test_px), data.task, data.n_classes),
                                       data.task, data.n_classes)  # fmt: skip
        val_px = pixel_features(data.val.images) if protocol.probe == "val" else None
        (prob,), c = probe_predict(pixel_features(data.train.images[idx]), y, val_px, data.val.labels, [test_px],
                                   data.task, data.n_classes, protocol)  # fmt: skip
        pixel = {**classification_metrics(data.test.labels, prob, data.task, data.n_classes), "probe_c": c}
        out[_label_key(kind, value)] = {"n_labelled": int(len(idx)), "majority": major, "pixel_lr": pixel}
    return {"dataset": data.name, "task": data.task, "labels": out}


# --------------------------------------------------------------------------------------------- the verb
def reproduce(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    import warnings

    from bolt_ssl.protocols import ProtocolConfig

    warnings.filterwarnings("ignore", message=".*(AUC|QWK) undefined.*")
    if args.merge:  # the tables come from the records alone
        return run_experiment(run, args, [], lambda cell: {}, summarize)
    plan = _dataset_plan(args, run)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    methods = args.methods or list(INITS)
    epochs = args.epochs or (5 if args.quick else (10 if plan["dataset"] == "digits" else 60))
    if args.pool_extra:
        plan["data"]["pool_extra"] = args.pool_extra
    # digit labels are not flip-invariant; --probe val: the probe's C is chosen on the val split (ours)
    # --probe-features / --layer-decay (ours): other probe feature sets, layer-wise lr decay; every init alike
    protocol = ProtocolConfig(
        flips=plan["dataset"] != "digits",
        probe=args.probe,
        probe_features=getattr(args, "probe_features", "readout"),
        layer_decay=float(getattr(args, "layer_decay", 1.0)),
    )
    probe_only = bool(args.probe_only)
    lowest = plan["labels"][0]
    # a record is reused only when the settings that shape it agree (--epochs, --pool-extra, label specs)
    shape = {
        "epochs": epochs,
        "pool_extra": int(args.pool_extra or 0),
        "labels": [list(x) for x in plan["labels"]],
    }
    # the probe settings join the shape only when they differ from the spec's (older records stay reusable)
    probe_shape = {"probe": args.probe} if args.probe != "spec" else {}
    shape.update(probe_shape)
    if protocol.probe_features != "readout":
        shape["probe_features"] = protocol.probe_features
    if protocol.layer_decay != 1.0:
        shape["layer_decay"] = protocol.layer_decay
    if probe_only:
        shape["probe_only"] = True
    cells = [
        Cell(f"floors/seed{s}", {"kind": "floors", "seed": s, "labels": shape["labels"], **probe_shape})
        for s in seeds
    ]
    branches = [b for b in BRANCHES if b in (getattr(args, "branch", None) or ["online"])]
    if "target" in branches:
        single = [m for m in methods if m not in TARGET_METHODS]
        if single:
            run.log(
                f"--branch target: {', '.join(single)} have no EMA target encoder; their single encoder is used"
            )
        if args.sweep:
            run.log("--branch target: the --sweep variants keep the online encoder")
    cells += method_cells(methods, seeds, shape, branches)
    if args.sweep:
        for name in QUICK_SWEEP if args.quick else SWEEP:
            cells.append(Cell(f"sweep/{name}", {"kind": "sweep", "variant": name, "seed": 0, **shape}))
    assert run.dir is not None
    cache = run.dir / "pretrain"

    def run_cell(cell: Cell) -> dict[str, Any]:
        p = cell.params
        if p["kind"] == "floors":
            return _floors(plan, plan["labels"], p["seed"], protocol)
        if p["kind"] == "method":
            method, seed, branch = p["method"], p["seed"], p.get("branch", "online")
            result: dict[str, Any] = {"method": method, "epochs": epochs, "notes": plan["notes"]}
            init = "scratch"
            if method != "scratch":
                config = _pretrain_config(plan, method, epochs, seed, {})
                folder = cache / f"{method}-seed{seed}"
                result["pretrain"] = pretrain(config, folder, run.accelerator, run.log, probe_only)
                result["pretrain_config"] = config
                init = str(backbone_file(folder, branch))
            result.update(
                _downstream(
                    init,
                    method,
                    plan,
                    plan["labels"],
                    [seed],
                    run.device,
                    protocol,
                    run.log,
                    probe_only,
                    branch,
                )
            )
            return result
        name = p["variant"]
        _, variant = SWEEP[name]
        config = _pretrain_config(plan, "bolt", epochs, 0, variant)
        if variant.get("pool_extra"):
            base = _pretrain_config(plan, "bolt", epochs, 0, {})
            from bolt_ssl.data import load_dataset
            from bolt_ssl.presets import data_config

            pool = len(load_dataset(data_config(base)).pretrain_pool())
            config["epochs"] = _equal_steps_epochs(config, pool, epochs)
        slug = name.replace("×", "x").replace("=", "-").replace("λ", "lambda").replace("+", "plus")
        folder = cache / ("bolt-seed0" if name == "default" else f"sweep-{slug}")
        summary = pretrain(config, folder, run.accelerator, run.log, probe_only)
        down = _downstream(str(folder / "backbone.pt"), f"bolt[{name}]", plan, [lowest], [0, 1, 2], run.device,
                           protocol, run.log, probe_only)  # fmt: skip
        return {"variant": name, "pretrain": summary, "pretrain_config": config, **down}

    result = run_experiment(run, args, cells, run_cell, summarize, settings=_data_settings(plan))
    try:
        plot(run.dir, _records(run.dir))
    except Exception as err:  # plots are a convenience; the tables are the result
        run.log(f"plots skipped ({type(err).__name__}: {err})")
    return result


def _data_settings(plan: dict[str, Any]) -> dict[str, Any]:
    """The run-wide data identity every cell depends on: the dataset ``--dataset`` resolved to (``--quick``
    falls back to synthetic-retina) and, for a MedMNIST file, its MD5 (another file under --data.root re-runs)."""
    from bolt_ssl.data import find_medmnist, md5sum

    settings: dict[str, Any] = {"dataset": plan["dataset"]}
    if plan["dataset"] in ("retinamnist", "breastmnist"):
        path = find_medmnist(plan["dataset"], 28, plan["data"]["root"])
        settings["data_md5"] = md5sum(path) if path is not None else None
    return settings


def _records(folder: Path) -> list[Record]:
    from paperlab_core.experiment import load_records

    return load_records([folder]) if (folder / "records").is_dir() else []


# --------------------------------------------------------------------------------------------- tables
def _mean_std(values: list[float]) -> str:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{np.mean(vals):.3f} ± {np.std(vals, ddof=1):.3f}"


def _signed_mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:+.3f}"
    return f"{np.mean(values):+.3f} ± {np.std(values, ddof=1):.3f}"


def _primary(task: str) -> str:
    return "qwk" if task == "ordinal" else "accuracy"


def _per_seed(
    records: list[Record], method: str, label: str, protocol: str, metric: str, branch: str = "online"
) -> dict[int, float]:
    out = {}
    for r in records:
        res = r["result"]
        if (
            r["params"].get("kind") == "method"
            and r["params"]["method"] == method
            and _branch(r) == branch
            and label in res.get("labels", {})
        ):
            for seed, cell in res["labels"][label].items():
                if metric in cell.get(protocol, {}):  # probe-only records have no fine-tuning
                    out[int(seed)] = cell[protocol][metric]
    return out


def target_line(
    records: list[Record], a: str, b: str, label: str, protocol: str, metric: str, branch: str = "online"
) -> dict[str, Any]:
    """Paired Δ = metric(a) − metric(b) over the shared seeds; reached = mean Δ > 0 and a ≥ b in ≥ 2/3 of seeds.
    ``branch``: the encoder of a (b is scratch or an online encoder)."""
    va = _per_seed(records, a, label, protocol, metric, branch)
    vb = _per_seed(records, b, label, protocol, metric)
    seeds = sorted(set(va) & set(vb))
    deltas = [va[s] - vb[s] for s in seeds]
    if not deltas:
        return {"comparison": f"{a} vs {b}", "branch": branch, "label": label, "protocol": protocol, "metric": metric, "seeds": 0,
                "delta_mean": None, "delta_std": None, "wins": 0, "reached": None}  # fmt: skip
    wins = sum(d >= 0 for d in deltas)
    reached = bool(np.mean(deltas) > 0 and wins >= math.ceil(2 * len(deltas) / 3))
    return {"comparison": f"{a} vs {b}", "branch": branch, "label": label, "protocol": protocol, "metric": metric,
            "seeds": len(deltas), "per_seed": deltas, "delta_mean": float(np.mean(deltas)),
            "delta_std": float(np.std(deltas, ddof=1)) if len(deltas) > 1 else 0.0, "wins": wins,
            "reached": reached}  # fmt: skip


def _label_order(label: str) -> float:
    """ "k=10" → 10, "1%" → 1: label specs in increasing order (JSON records come back with sorted keys)."""
    return float(label[2:]) if label.startswith("k=") else float(label.rstrip("%"))


def summarize(records: list[Record]) -> dict[str, Any]:
    """Every table from the records alone (what ``--merge`` has)."""
    methods = [m for m in INITS if any(r["params"].get("method") == m for r in records)]
    method_records = [r for r in records if r["params"].get("kind") == "method"]
    if not method_records:
        return {"main": Table(["note"], [["no method cells"]])}
    first = method_records[0]["result"]
    # scratch has no pre-training: the grid's epochs come from a record that pre-trained
    epochs = next(
        (r["result"].get("epochs") for r in method_records if "pretrain" in r["result"]), first.get("epochs")
    )
    extra = {"dataset": first["dataset"], "epochs": epochs, "notes": first.get("notes", []),
             "data_md5": first.get("data_md5"), "data_official": first.get("data_official")}  # fmt: skip
    task = first["task"]
    labels = sorted({k for r in method_records for k in r["result"]["labels"]}, key=_label_order)
    primary = _primary(task)
    metrics = [m for m in METRICS if not (m == "qwk" and task != "ordinal")]
    cols = ["method", "labels", *[METRIC_NAMES[m] for m in metrics], "seeds"]
    tables: dict[str, Any] = {}
    probes = sorted({r["result"].get("protocol", {}).get("probe", "spec") for r in method_records})
    extra["probe"] = probes[0] if len(probes) == 1 else probes
    probe_name = "linear probe" + (" (val-tuned C)" if probes == ["val"] else "")
    kinds = sorted({r["result"].get("protocol", {}).get("probe_features", "readout") for r in method_records})
    extra["probe_features"] = kinds[0] if len(kinds) == 1 else kinds
    if kinds != ["readout"]:
        probe_name += f" ({'/'.join(kinds)} features)"
    decays = sorted({float(r["result"].get("protocol", {}).get("layer_decay", 1.0)) for r in method_records})
    extra["layer_decay"] = decays[0] if len(decays) == 1 else decays
    ft_name = "Fine-tuning" + (
        f" (layer decay {'/'.join(f'{d:g}' for d in decays)})" if decays != [1.0] else ""
    )
    branches = [b for b in BRANCHES if any(_branch(r) == b for r in method_records)]
    extra["branches"] = branches
    for protocol, name, title in (("finetune", "main", f"{ft_name} (test split, mean ± std over seeds)"),
                                  ("linear_probe", "linear_probe", f"{probe_name[0].upper()}{probe_name[1:]} (test split, mean ± std over seeds)")):  # fmt: skip
        table = Table(cols, title=title)
        for label in labels:
            for method in methods:
                for branch in branches:
                    vals = {m: _per_seed(records, method, label, protocol, m, branch) for m in metrics}
                    if vals[metrics[0]]:
                        table.add(_row_name(method, branch), label,
                                  *[_mean_std(list(vals[m].values())) for m in metrics], len(vals[metrics[0]]))  # fmt: skip
        tables[name] = table
    if "target" in branches:
        tables["branches"], tables["branches_wide"], extra["branch_lines"] = branch_tables(
            records, labels, primary
        )
    imagenet = Table(["method", "status"], title="ImageNet-supervised initialisation")
    imagenet.add(
        "imagenet", "skipped offline (needs hub weights; --init imagenet:PATH takes a local timm file)"
    )
    tables["imagenet"] = imagenet

    floors = Table(
        ["floor", "labels", *[METRIC_NAMES[m] for m in metrics], "seeds"], title="Floors (test split)"
    )
    floor_records = [r for r in records if r["params"].get("kind") == "floors"]
    for label in labels:
        for kind, name in (("majority", "majority class"), ("pixel_lr", "pixel logistic regression")):
            per = {m: [r["result"]["labels"][label][kind][m] for r in floor_records if label in r["result"]["labels"]]
                   for m in metrics}  # fmt: skip
            if per[metrics[0]]:
                floors.add(name, label, *[_mean_std(per[m]) for m in metrics], len(per[metrics[0]]))
    tables["floors"] = floors

    lowest = labels[0]
    lines = []
    targets = Table(["target", "labels", "protocol", "metric", "Δ mean ± std", "a ≥ b seeds", "verdict"],
                    title="Target lines (paired over seeds; reached = mean Δ > 0 and a ≥ b in ≥ 2/3 of seeds)")  # fmt: skip
    comparisons = [("bolt", "scratch", "finetune", m) for m in (primary, "accuracy", "auc_ovr")]
    comparisons = list(dict.fromkeys(comparisons))
    comparisons += [("bolt", "token_byol", "finetune", primary), ("bolt", "byol", "finetune", primary)]
    for a, b, protocol, metric in comparisons:
        line = target_line(records, a, b, lowest, protocol, metric)
        lines.append(line)
        if line["seeds"]:
            verdict = "reached" if line["reached"] else "not reached"
            targets.add(f"{METHOD_NAMES[a]} > {METHOD_NAMES[b]}", lowest, protocol, METRIC_NAMES[metric],
                        f"{line['delta_mean']:+.3f} ± {line['delta_std']:.3f}", f"{line['wins']}/{line['seeds']}", verdict)  # fmt: skip
    gate_rows = []
    for branch in branches:
        encoder = "" if branch == "online" else f" ({BRANCH_NAMES[branch]} encoder)"
        for label in labels:
            line = target_line(records, "bolt", "scratch", label, "linear_probe", primary, branch)
            if not line["seeds"]:
                continue
            gate_rows.append(line)
            targets.add(f"gate: BOLT{encoder} {probe_name} > random-init {probe_name}", label, "linear_probe",
                        METRIC_NAMES[primary], f"{line['delta_mean']:+.3f} ± {line['delta_std']:.3f}",
                        f"{line['wins']}/{line['seeds']}", "pass" if line["delta_mean"] > 0 else "FAIL")  # fmt: skip
    tables["targets"] = targets
    if "val" in probes:  # the C each val-tuned probe chose, per seed
        chosen = Table(["method", "labels", "C per seed"], title="Probe C chosen on the val split")
        for label in labels:
            for method in methods:
                cs = _per_seed(records, method, label, "linear_probe", "probe_c")
                if cs:
                    chosen.add(METHOD_NAMES[method], label, " / ".join(f"{cs[s]:g}" for s in sorted(cs)))
        tables["probe_c"] = chosen

    pretext = Table(["method", "epochs", "steps", "final L_BYOL", "final L_rank", "rank acc (val)", "min proj std",
                     "0.5/√d", "images/s", "wall s"], title="Pre-training mechanics (per run, mean over seeds)")  # fmt: skip
    for method in methods:
        runs = list(
            {  # one pre-training per seed, whichever encoders were probed
                r["params"]["seed"]: r["result"]["pretrain"]
                for r in method_records
                if r["params"]["method"] == method and "pretrain" in r["result"]
            }.values()
        )
        if not runs:
            continue
        pretext.add(METHOD_NAMES[method], *_pretext_row(runs, epochs))
    tables["pretext"] = pretext
    tables["mechanics"], extra["mechanics_lines"] = mechanics_checks(records)

    sweep_records = [r for r in records if r["params"].get("kind") == "sweep"]
    if sweep_records:
        sweep = Table(["variant", "change", "pre-train steps", "rank acc (val)", f"ft {METRIC_NAMES[primary]} ({lowest})",
                       "Δ vs scratch", f"lp {METRIC_NAMES[primary]}"], title=f"What was tried (BOLT pre-trained once, seed 0; "
                      f"label draws 0–2 at {lowest})")  # fmt: skip
        scratch = _per_seed(records, "scratch", lowest, "finetune", primary)
        order = list(SWEEP)
        for r in sorted(
            sweep_records,
            key=lambda r: order.index(r["params"]["variant"]) if r["params"]["variant"] in order else 99,
        ):
            res = r["result"]
            cells = res["labels"][lowest]
            ft = {int(s): c["finetune"][primary] for s, c in cells.items() if "finetune" in c}
            lp = [c["linear_probe"][primary] for c in cells.values()]
            deltas = [ft[s] - scratch[s] for s in ft if s in scratch]
            delta = f"{np.mean(deltas):+.3f} ({sum(d >= 0 for d in deltas)}/{len(deltas)})" if deltas else "–"
            sweep.add(res["variant"], SWEEP.get(res["variant"], ("",))[0], res["pretrain"].get("steps"),
                      _fmt(res["pretrain"].get("final", {}).get("rank_acc")), _mean_std(list(ft.values())), delta,
                      _mean_std(lp))  # fmt: skip
        tables["sweep"] = sweep

    paper = Table(["dataset (paper)", "metric columns as printed", "scratch", "ImageNet-pretrained", "each SSL baseline", "BOLT"],
                  title="The paper's own numbers (not retrievable; only the abstract was readable)")  # fmt: skip
    for name in (
        "skin lesion classification",
        "knee fatigue fracture grading",
        "diabetic retinopathy grading",
    ):
        paper.add(name, *["TODO(PDF)"] * 5)
    tables["paper"] = paper
    text = "\n".join(
        f"target: {METHOD_NAMES[t['comparison'].split(' vs ')[0]]} > {METHOD_NAMES[t['comparison'].split(' vs ')[1]]} "
        f"at {t['label']} ({t['protocol']} {METRIC_NAMES[t['metric']]}): "
        f"{'reached' if t['reached'] else 'not reached'}, Δ = {t['delta_mean']:+.3f} ± {t['delta_std']:.3f}"
        for t in lines if t["seeds"]
    )  # fmt: skip
    if extra.get("notes"):
        text += "\n\n" + "\n".join(f"note: {n}" for n in extra["notes"])
    return {**tables, "text": text, "target_lines": lines, "gate_lines": gate_rows, **extra}


def _row_name(method: str, branch: str) -> str:
    return METHOD_NAMES[method] + ("" if branch == "online" else f" [{BRANCH_NAMES[branch]}]")


def branch_tables(
    records: list[Record], labels: list[str], metric: str
) -> tuple[Table, Table, list[dict[str, Any]]]:
    """Online vs EMA-target encoder of the same pre-trainings, paired over seeds (label draws), per protocol,
    method and label spec: ``branches`` (long, mean ± std) and ``branches_wide`` (one row per method and protocol,
    one column per label spec: online → target, Δ and target ≥ online seeds)."""
    name = METRIC_NAMES[metric]
    long = Table(["method", "protocol", "labels", f"online {name}", f"EMA target {name}", "Δ target − online",
                  "target ≥ online seeds"], title=f"Online vs EMA-target encoder (test {name}, paired over seeds)")  # fmt: skip
    wide = Table(["method", "protocol", *[f"{label}: online → target (Δ, target ≥ online)" for label in labels]],
                 title=f"Online vs EMA-target encoder, test {name} (means over seeds)")  # fmt: skip
    lines = []
    for protocol in ("linear_probe", "finetune"):
        for method in TARGET_METHODS:
            cells = []
            for label in labels:
                on = _per_seed(records, method, label, protocol, metric, "online")
                tg = _per_seed(records, method, label, protocol, metric, "target")
                seeds = sorted(set(on) & set(tg))
                if not seeds:
                    cells.append("–")
                    continue
                deltas = [tg[s] - on[s] for s in seeds]
                wins = sum(d >= 0 for d in deltas)
                line = {"method": method, "protocol": protocol, "label": label, "metric": metric, "seeds": seeds,
                        "online": [on[s] for s in seeds], "target": [tg[s] for s in seeds], "per_seed": deltas,
                        "delta_mean": float(np.mean(deltas)), "wins": wins}  # fmt: skip
                lines.append(line)
                long.add(METHOD_NAMES[method], protocol, label, _mean_std(line["online"]), _mean_std(line["target"]),
                         _signed_mean_std(deltas), f"{wins}/{len(seeds)}")  # fmt: skip
                cells.append(f"{np.mean(line['online']):.3f} → {np.mean(line['target']):.3f} "
                             f"({np.mean(deltas):+.3f}, {wins}/{len(seeds)})")  # fmt: skip
            if any(c != "–" for c in cells):
                wide.add(METHOD_NAMES[method], protocol.replace("_", " "), *cells)
    return long, wide, lines


RANK_ACC_GATE = 0.75  # issue #22: ranking pairwise accuracy on held-out pairs after a short CPU run


def mechanics_checks(records: list[Record]) -> tuple[Table, list[dict[str, Any]]]:
    """Issue #22 acceptance per pre-training run: ranking pairwise accuracy on held-out (val) images with fresh
    strengths > 0.75 at the end, and no collapse: per-dimension std of the L2-normalised online projections ≥
    0.5/√d at every logged epoch (epoch −1 = initialisation). token-BYOL's head gets no gradient (λ = 0): reported,
    not gated."""
    table = Table(["run", "steps", "rank acc (val)", f"> {RANK_ACC_GATE}", "min proj std (all epochs)", "0.5/√d",
                   "no collapse"], title="Acceptance: ranking learnt on held-out pairs, no collapse")  # fmt: skip
    lines = []
    order = {"bolt": 0, "token_byol": 2, "byol": 3}

    def rank(r: Record) -> tuple[int, str]:
        p = r["params"]
        return (1 if p.get("kind") == "sweep" else order.get(p.get("method"), 9), r["key"])

    online_runs = {
        (r["params"].get("method"), r["params"].get("seed")) for r in records if _branch(r) == "online"
    }
    for r in sorted(records, key=rank):
        res, params = r["result"], r["params"]
        pre = res.get("pretrain")
        method = params.get("method", "bolt" if params.get("kind") == "sweep" else None)
        if not pre or method not in ("bolt", "token_byol", "byol"):
            continue
        if _branch(r) != "online" and (method, params.get("seed")) in online_runs:
            continue  # the same pre-training, already listed under its online record
        stds = [h["proj_std"] for h in pre["history"] if "proj_std" in h]
        floor = 0.5 / pre["proj_dim"] ** 0.5
        acc = pre.get("final", {}).get("rank_acc")
        line = {"run": r["key"], "method": method, "steps": pre.get("steps"), "rank_acc": acc,
                "rank_gated": method == "bolt", "rank_ok": None if acc is None else acc > RANK_ACC_GATE,
                "min_proj_std": min(stds) if stds else None, "floor": floor, "epochs_logged": len(stds),
                "no_collapse": bool(stds) and min(stds) >= floor}  # fmt: skip
        lines.append(line)
        rank_verdict = (
            "–"
            if acc is None
            else ("yes" if line["rank_ok"] else "no") + ("" if line["rank_gated"] else " (λ=0)")
        )
        table.add(r["key"], pre.get("steps"), _fmt(acc), rank_verdict, _fmt(line["min_proj_std"]), f"{floor:.4f}",
                  "yes" if line["no_collapse"] else "NO")  # fmt: skip
    return table, lines


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


def _pretext_row(runs: list[dict[str, Any]], epochs: Any) -> list[Any]:
    final = [r.get("final", {}) for r in runs]

    def mean(key: str) -> str:
        vals = [f[key] for f in final if key in f]
        return f"{np.mean(vals):.3f}" if vals else "–"

    stds = [
        min(h["proj_std"] for h in r["history"] if "proj_std" in h)
        for r in runs
        if any("proj_std" in h for h in r["history"])
    ]
    floor = runs[0].get("collapse_floor")
    return [
        epochs, runs[0].get("steps"), mean("byol") if "byol" in final[0] else mean("mae"), mean("rank"),
        mean("rank_acc"), f"{min(stds):.3f}" if stds else "–", f"{floor:.3f}" if floor else "–",
        f"{np.mean([r['images_per_s'] for r in runs if r.get('images_per_s')]):.0f}",
        f"{np.mean([r['wall_s'] for r in runs]):.0f}",
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------- plots
def plot(folder: Path, records: list[Record]) -> list[Path]:
    """metric vs label fraction per method (fine-tune and linear probe, error bars) and pretext curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    method_records = [r for r in records if r["params"].get("kind") == "method"]
    if not method_records:
        return []
    task = method_records[0]["result"]["task"]
    primary = _primary(task)
    labels = list(method_records[0]["result"]["labels"])
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, protocol in zip(axes, ("finetune", "linear_probe"), strict=True):
        for method in INITS:
            means, errs = [], []
            for label in labels:
                vals = list(_per_seed(records, method, label, protocol, primary).values())
                means.append(np.mean(vals) if vals else np.nan)
                errs.append(np.std(vals) if len(vals) > 1 else 0.0)
            if not all(np.isnan(means)):
                ax.errorbar(
                    range(len(labels)), means, yerr=errs, marker="o", capsize=3, label=METHOD_NAMES[method]
                )
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("labelled training images")
        ax.set_ylabel(f"test {METRIC_NAMES[primary]}")
        ax.set_title(protocol.replace("_", " "))
    for ax in axes:  # a --probe-only run has no fine-tuning curves: the legend goes where there are lines
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
            break
    fig.tight_layout()
    paths.append(folder / "metric_vs_labels.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for r in method_records:
        pre = r["result"].get("pretrain")
        if not pre or _branch(r) != "online":
            continue
        hist = pre["history"]
        label = f"{r['params']['method']} s{r['params']['seed']}"
        for ax, key in zip(axes, ("byol", "rank_acc", "proj_std"), strict=True):
            pts = [(h["epoch"], h[key]) for h in hist if key in h]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=label)
    for ax, title in zip(
        axes, ("L_BYOL (val)", "ranking pairwise accuracy (val)", "projection std (val)"), strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel("epoch (−1 = initialisation)")
    floor = next(
        (
            r["result"]["pretrain"].get("collapse_floor")
            for r in method_records
            if r["result"].get("pretrain")
        ),
        None,
    )
    if floor:
        axes[2].axhline(floor, color="k", ls="--", lw=1, label="0.5/√d")
    axes[2].legend(fontsize=6)
    fig.tight_layout()
    paths.append(folder / "pretext_curves.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


__all__ = [
    "BRANCHES",
    "DATASETS",
    "INITS",
    "SWEEP",
    "TARGET_METHODS",
    "backbone_file",
    "branch_tables",
    "mechanics_checks",
    "method_cells",
    "plot",
    "reproduce",
    "summarize",
    "target_line",
]
