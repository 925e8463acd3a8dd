"""Package verbs: ``finetune``, ``linear-probe``, ``evaluate``, ``datasets`` (declared in :mod:`bolt_ssl.cli`)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from paperlab_core.errors import ConfigError, UserError
from paperlab_core.verbs import Run

DATA_FLAGS = ("name", "size", "root", "file", "as_rgb", "ordinal", "pool_extra", "csv", "image_dir", "image_col",
              "label_col", "onehot_cols")  # fmt: skip


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--data.*`` values given on the command line (None = not given)."""
    out = {key: getattr(args, f"data_{key}", None) for key in DATA_FLAGS}
    if out.get("root") is not None:
        out["root"] = str(out["root"])
    return out


def _labelled(args: argparse.Namespace, data, seed: int):
    from bolt_ssl.data import Split, label_subset

    idx = label_subset(data.train.labels, data.n_classes, data.task, seed, fraction=args.label_fraction,
                       k=args.label_k)  # fmt: skip
    return Split(data.train.images[idx], data.train.labels[idx]), idx


def _record(data, split: str, n_labelled: int, args: argparse.Namespace, method: str, init: str, protocol: str,
            metrics: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    return {
        "dataset": data.name, "task": data.task, "split": split, "size": data.size, "n_labelled": n_labelled,
        "label_fraction": getattr(args, "label_fraction", None), "label_k": getattr(args, "label_k", None),
        "seed": getattr(args, "seed", None), "method": method, "init": init, "protocol": protocol, **metrics,
        "n_test": len(data.split(split)), "data_md5": data.md5, "data_official": data.official,
    }  # fmt: skip


def _setup(args: argparse.Namespace, run: Run):
    """(preset, data, init) for finetune / linear-probe."""
    from bolt_ssl.data import load_dataset
    from bolt_ssl.presets import data_config, load_preset, vit_config
    from bolt_ssl.protocols import load_init

    preset = load_preset(args.config)
    data_cfg = data_config(preset, **data_overrides(args))
    data = load_dataset(data_cfg)
    init = load_init(args.init, vit_config(preset), getattr(args, "init_branch", "online"))
    return data_cfg, data, init


def finetune(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Fine-tune an initialisation on a label subset; write ``finetuned.pt`` and val/test metrics."""
    from bolt_ssl.metrics import classification_metrics
    from bolt_ssl.protocols import (
        ProtocolConfig,
        build_backbone,
        check_fits,
        downstream_stats,
        finetuned_state,
        predict_proba,
    )
    from bolt_ssl.protocols import (
        finetune as run_finetune,
    )

    data_cfg, data, init = _setup(args, run)
    cfg = ProtocolConfig(steps=args.steps, flips=args.flips, layer_decay=args.layer_decay)
    backbone = build_backbone(init, args.seed, run.device)
    check_fits(backbone, data)
    train, idx = _labelled(args, data, args.seed)
    mean, std = downstream_stats(data)
    run.log(f"fine-tuning {init.name} on {len(train)} labelled {data.name} images for {cfg.steps} steps")
    model = run_finetune(backbone, train, data.task, data.n_classes, mean, std, cfg, args.seed)
    out: dict[str, Any] = {"protocol_config": cfg.to_dict(), "labelled_indices": idx.tolist()}
    for split in ("val", "test"):
        prob = predict_proba(model, data.split(split).images, data.task, mean, std)
        metrics = classification_metrics(data.split(split).labels, prob, data.task, data.n_classes)
        out[split] = _record(data, split, len(train), args, init.name, args.init, "finetune", metrics)
    run.save_torch("finetuned.pt", finetuned_state(model, init, data.task, data.n_classes, mean, std,
                                                   asdict(data_cfg), {"seed": args.seed}))  # fmt: skip
    run.log(f"test: {_short(out['test'])}")
    return out


def linear_probe(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Logistic regression on frozen readout features (``--pixels``: on raw pixels) of a label subset."""
    from bolt_ssl.metrics import classification_metrics
    from bolt_ssl.protocols import (
        ProtocolConfig,
        build_backbone,
        check_fits,
        downstream_stats,
        features,
        pixel_features,
        probe_predict,
    )

    _, data, init = _setup(args, run)
    cfg = ProtocolConfig(probe=args.probe, probe_features=args.probe_features)
    train, idx = _labelled(args, data, args.seed)
    out: dict[str, Any] = {"protocol_config": cfg.to_dict(), "labelled_indices": idx.tolist()}
    if args.pixels:
        protocol, name = "pixel_lr", "pixels"
        fx = {s: pixel_features(data.split(s).images) for s in ("val", "test")}
        ftrain = pixel_features(train.images)
    else:
        protocol, name = "linear_probe", init.name
        backbone = build_backbone(init, args.seed, run.device)
        check_fits(backbone, data)
        mean, std = downstream_stats(data)
        kind = cfg.probe_features
        ftrain = features(backbone, train.images, mean, std, kind=kind)
        fx = {s: features(backbone, data.split(s).images, mean, std, kind=kind) for s in ("val", "test")}
    has_val = len(data.val) > 0
    probs, c = probe_predict(ftrain, train.labels, fx["val"] if has_val else None,
                             data.val.labels if has_val else None, [fx["val"], fx["test"]], data.task,
                             data.n_classes, cfg)  # fmt: skip
    out["probe_c"] = c
    for split, prob in zip(("val", "test"), probs, strict=True):
        metrics = classification_metrics(data.split(split).labels, prob, data.task, data.n_classes)
        out[split] = _record(data, split, len(train), args, name, args.init, protocol, metrics)
    run.log(f"test: {_short(out['test'])} (probe C {c:g})")
    return out


def _short(record: dict[str, Any]) -> str:
    keys = ("accuracy", "macro_f1", "auc_ovr", "qwk")
    return ", ".join(f"{k} {record[k]:.3f}" for k in keys if isinstance(record.get(k), float))


def evaluate(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """A pre-training checkpoint → 100 %-label linear probe + pretext diagnostics; a fine-tuned one → metrics."""
    import torch

    path = Path(args.ckpt)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise UserError(f"{path}: cannot be read as a checkpoint ({type(err).__name__})") from None
    if isinstance(blob, dict) and blob.get("kind") == "bolt-finetuned":
        return _evaluate_finetuned(blob, args, run)
    if isinstance(blob, dict) and ("paperlab" in blob or blob.get("kind") == "bolt-backbone"):
        return _evaluate_pretrained(blob, path, args, run)
    raise UserError(
        f"{path}: not a bolt checkpoint (expected last.ckpt / backbone.pt of `bolt train` or finetuned.pt)"
    )


def _data_from(stored: dict[str, Any] | None, args: argparse.Namespace):
    from bolt_ssl.data import DataConfig, load_dataset

    base = {k: v for k, v in (stored or {}).items() if k in DataConfig.__dataclass_fields__}
    base.update({k: v for k, v in data_overrides(args).items() if v is not None})
    cfg = DataConfig(**base)
    return cfg, load_dataset(cfg)


def _evaluate_finetuned(blob: dict[str, Any], args: argparse.Namespace, run: Run) -> dict[str, Any]:
    from bolt_ssl.metrics import classification_metrics
    from bolt_ssl.protocols import check_fits, classifier_from_state, predict_proba

    _, data = _data_from(blob.get("data"), args)
    model = classifier_from_state(blob, run.device)
    check_fits(model.backbone, data)
    if data.n_classes != blob["n_classes"]:
        raise ConfigError(
            f"{args.ckpt} predicts {blob['n_classes']} classes but {data.name} has {data.n_classes}"
        )
    split = data.split(args.split)
    prob = predict_proba(model, split.images, data.task, blob["norm_mean"], blob["norm_std"])
    metrics = classification_metrics(split.labels, prob, data.task, data.n_classes)
    record = _record(
        data, args.split, -1, args, blob.get("init", "?"), blob.get("init", "?"), "finetune", metrics
    )
    run.log(f"{args.split}: {_short(record)}")
    return {args.split: record}


def _evaluate_pretrained(
    blob: dict[str, Any], path: Path, args: argparse.Namespace, run: Run
) -> dict[str, Any]:
    import torch

    from bolt_ssl.metrics import classification_metrics
    from bolt_ssl.module import module_from_config
    from bolt_ssl.perturb import make_generator
    from bolt_ssl.pretrain import pretext_diagnostics
    from bolt_ssl.protocols import (
        ProtocolConfig,
        build_backbone,
        check_fits,
        downstream_stats,
        features,
        load_init,
        logistic_probe,
    )

    out: dict[str, Any] = {}
    if "paperlab" in blob:
        config = blob["paperlab"].get("config") or {}
        stored_data = config.get("data")
        module = module_from_config(config.get("model") or {})
        module.load_state_dict(blob["state_dict"])
        nets = module.nets.to(run.device).eval()
        _, data = _data_from(stored_data, args)
        check_fits(nets.online, data)
        held_out = data.val.images[:512]
        x = torch.from_numpy(held_out).to(run.device).permute(0, 3, 1, 2).float() / 255.0
        diag = pretext_diagnostics(nets, x, module.cfg, make_generator(run.device, module.seed + 99_991, 0))
        out["pretext"] = {"images": len(held_out), **diag}
        run.log("pretext on held-out images: " + ", ".join(f"{k} {v:.3f}" for k, v in diag.items()))
    else:
        _, data = _data_from(blob.get("data"), args)
    init = load_init(str(path), None, "online")  # type: ignore[arg-type]
    backbone = build_backbone(init, 0, run.device)
    check_fits(backbone, data)
    mean, std = downstream_stats(data)
    split = data.split(args.split)
    cfg = ProtocolConfig()
    prob = logistic_probe(features(backbone, data.train.images, mean, std), data.train.labels,
                          features(backbone, split.images, mean, std), data.task, data.n_classes, cfg)  # fmt: skip
    metrics = classification_metrics(split.labels, prob, data.task, data.n_classes)
    out[args.split] = _record(
        data, args.split, len(data.train), args, init.name, str(path), "linear_probe", metrics
    )
    run.log(f"{args.split} (linear probe, 100 % labels): {_short(out[args.split])}")
    return out


def datasets(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Supported datasets and which MedMNIST files are present locally (with their MD5 status)."""
    from bolt_ssl.data import EMBEDDED, MEDMNIST, SIZES, find_medmnist, md5sum

    rows = []
    root = str(args.data_root) if args.data_root else None
    print(f"{'dataset':22s} {'task':11s} {'size':>4s}  status")
    for name in EMBEDDED:
        print(
            f"{name:22s} {'ordinal' if name != 'digits' else 'multiclass':11s} {'':>4s}  embedded (generated offline)"
        )
        rows.append({"dataset": name, "status": "embedded"})
    for flag, (task, _, _, _, md5s) in MEDMNIST.items():
        for size in SIZES:
            path = find_medmnist(flag, size, root)
            if path is None:
                status = "missing"
            else:
                md5 = md5sum(path)
                status = f"{path} ({'official' if md5 == md5s[size] else 'non-official MD5 ' + md5})"
            if path is not None or size == 28:
                print(f"{flag:22s} {task:11s} {size:>4d}  {status}")
            rows.append({"dataset": flag, "size": size, "status": status})
    print("folder / csv: local ImageFolder or CSV-labelled folders (--data.root / --data.csv; no download)")
    return {"datasets": rows}
