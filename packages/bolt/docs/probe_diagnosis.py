"""Linear-probe diagnosis (lab notebook, issue #22): probe every cached backbone of ``bolt reproduce`` run folders.

    uv run python packages/bolt/docs/probe_diagnosis.py OUT_DIR... [--data-root DIR] [--json PATH]

For each ``OUT_DIR/pretrain/<method>-seed<s>/backbone.pt`` (and a random-init ViT per seed): test QWK of the
logistic-regression probe (the ``reproduce`` protocol) with the CLS readout and with mean-pooled patch tokens, at
1 / 10 / 100 % labels (label draws 0-2; 100 % has one), and the effective rank (exp of the entropy of the
normalised singular values) of the centred train features. No training; about a second of CPU per backbone.
"""

from __future__ import annotations

import argparse
import json
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from bolt_ssl.data import label_subset, load_dataset
from bolt_ssl.metrics import classification_metrics
from bolt_ssl.presets import data_config, deep_merge, load_preset, vit_config
from bolt_ssl.protocols import (
    ProtocolConfig,
    build_backbone,
    downstream_stats,
    features,
    load_init,
    logistic_probe,
)


def effective_rank(x: np.ndarray) -> float:
    sv = np.linalg.svd(x - x.mean(0), compute_uv=False)
    p = sv**2 / (sv**2).sum()
    return float(np.exp(-(p * np.log(p + 1e-12)).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--data-root", default="../shared/data/medmnist")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    preset = deep_merge(load_preset("retinamnist"), {"data": {"root": args.data_root}})
    data = load_dataset(data_config(preset, pool_extra=0))
    mean, std = downstream_stats(data)
    inits: dict[str, tuple[str, int]] = {}
    for folder in args.dirs:
        for path in sorted(folder.glob("pretrain/*/backbone.pt")):
            found = re.fullmatch(r"(.+)-seed(\d+)", path.parent.name)
            name, seed = (found.group(1), int(found.group(2))) if found else (path.parent.name, 0)
            inits.setdefault(f"scratch/{seed}", ("scratch", seed))
            inits[f"{name}/{seed}"] = (str(path), seed)
    out = {}
    for name, (spec, seed) in sorted(inits.items()):
        net = build_backbone(load_init(spec, vit_config(preset)), seed, torch.device("cpu"))
        row = {}
        for readout in ("cls", "mean"):
            net.cfg.readout = readout
            train, test = (
                features(net, data.train.images, mean, std),
                features(net, data.test.images, mean, std),
            )
            row[f"erank_{readout}"] = effective_rank(train)
            for fraction in (0.01, 0.1, 1.0):
                qwk = []
                for draw in (0,) if fraction == 1.0 else (0, 1, 2):
                    idx = label_subset(data.train.labels, data.n_classes, data.task, draw, fraction=fraction)
                    prob = logistic_probe(train[idx], data.train.labels[idx], test, data.task, data.n_classes,
                                          ProtocolConfig())  # fmt: skip
                    qwk.append(
                        classification_metrics(data.test.labels, prob, data.task, data.n_classes)["qwk"]
                    )
                row[f"{readout}@{fraction:g}"] = float(np.mean(qwk))
        out[name] = row
        print(name, " ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
