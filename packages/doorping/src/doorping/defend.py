"""``doorping defend``: run the defences of :mod:`doorping.defences` against a victim trained on a distilled set,
or (``--victim``) against an externally trained model given as its weights.

The defender holds the victim and a clean held-out set D_def: ``n_clean`` test images (default 10 % of the test
split, stratified), excluded from the CTA/ASR evaluation. ``defence.json`` gets every number; the PNGs show the
reversed Neural Cleanse triggers, the STRIP entropy histograms and the fine-pruning curve.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from doorping.artifacts import grid, load_distilled, load_trigger, save_png
from doorping.config import EvalConfig
from doorping.datasets import ImageSet, load_dataset, stratified_split
from doorping.defences import (
    channel_activity,
    fine_prune,
    fine_tune,
    neural_cleanse,
    out_of_range,
    strip_detect,
    strip_entropy,
)
from doorping.evaluate import evaluate_one, score_model
from doorping.networks import build_network
from doorping.trigger import square_mask, stamp
from paperlab_core.errors import ConfigError
from paperlab_core.logging import save_torch_atomic, write_json_atomic
from paperlab_core.verbs import Run

Apply = Callable[[torch.Tensor], torch.Tensor]
ALL = ("neural-cleanse", "strip", "fine-pruning", "range-check")


def defender_split(data: ImageSet, n_clean: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(D_def indices, evaluation indices) of the test split: stratified, ``n_clean`` = 10 % by default."""
    labels = data.test_y.numpy()
    n = n_clean or max(data.num_classes, round(0.1 * len(labels)))
    if not data.num_classes <= n < len(labels):
        raise ConfigError(f"--n-clean {n}: expected {data.num_classes} ≤ n < {len(labels)} (the test split)")
    rest, defender = stratified_split(labels, n, seed)
    return defender, rest


def _hist_png(path: Path, series: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for name, values in series.items():
        ax.hist(values, bins=30, alpha=0.6, label=name)
    ax.set_xlabel("STRIP entropy (bits)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _curve_png(path: Path, curve: list[tuple[int, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([c[0] for c in curve], [c[1] for c in curve], marker="o")
    ax.set_xlabel("pruned channels of the last convolution")
    ax.set_ylabel("defender accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_defences(
    victim: nn.Module,
    data: ImageSet,
    apply: Apply,
    target: int,
    folder: Path,
    quick: bool = False,
    seed: int = 0,
    n_clean: int | None = None,
    which: tuple[str, ...] = ALL,
) -> dict[str, Any]:
    """Every requested defence on ``victim`` → a JSON-able dict (also written to ``folder/defence.json``)."""
    import copy

    device = next(victim.parameters()).device
    defender, rest = defender_split(data, n_clean, seed)
    x_def, y_def = data.test_x[defender].to(device), data.test_y[defender].to(device)
    x_eval, y_eval = data.test_x[rest].to(device), data.test_y[rest].to(device)
    mean, std = data.mean_std(x_eval)
    victim.eval()
    out: dict[str, Any] = {"n_clean": len(defender), "n_eval": len(rest), "target": target}
    out["before"] = score_model(victim, x_eval, y_eval, apply, target).as_dict()
    non_target = x_eval[y_eval != target]
    limit = 50 if quick else 200
    triggered = torch.cat([apply(non_target[i : i + 512]) for i in range(0, len(non_target), 512)])[:limit]
    clean_eval = x_eval[:limit]
    folder.mkdir(parents=True, exist_ok=True)
    if "neural-cleanse" in which:
        nc = neural_cleanse(victim, x_def, mean, std, data.num_classes, epochs=5 if quick else 30,
                            batches=4 if quick else 8, seed=seed)  # fmt: skip
        pictures = torch.cat([nc["masks"].expand(-1, data.channels, -1, -1), nc["masks"] * nc["patterns"]])
        save_png(folder / "neural_cleanse.png", grid(pictures, nrow=data.num_classes))
        out["nc"] = {k: nc[k] for k in ("l1", "anomaly_index", "flagged", "reached_99")}
        out["nc"]["target_flagged"] = target in nc["flagged"]
    if "strip" in which:
        n_blend = 20 if quick else 100
        h_def = strip_entropy(victim, x_def, x_def, n_blend, seed)
        h_clean = strip_entropy(victim, clean_eval, x_def, n_blend, seed + 1)
        h_trig = strip_entropy(victim, triggered, x_def, n_blend, seed + 2)
        out["strip"] = {**strip_detect(h_def, h_clean, h_trig), "n_blend": n_blend,
                        "mean_entropy_clean": float(h_clean.mean()), "mean_entropy_triggered": float(h_trig.mean())}  # fmt: skip
        _hist_png(
            folder / "strip_entropy.png", {"clean": h_clean.cpu().numpy(), "triggered": h_trig.cpu().numpy()}
        )
    if "range-check" in which:
        out["range_check"] = {
            "detection_rate": float(out_of_range(triggered, mean, std).float().mean()),
            "false_positive_rate": float(out_of_range(clean_eval, mean, std).float().mean()),
        }
    if "fine-pruning" in which:
        model = copy.deepcopy(victim)
        pruning = fine_prune(model, x_def, y_def)
        after_prune = score_model(model, x_eval, y_eval, apply, target).as_dict()
        fine_tune(
            model, pruning["conv"], pruning["order"], x_def, y_def, epochs=5 if quick else 20, seed=seed
        )
        assert bool((channel_activity(model, pruning["conv"], x_def)[pruning["order"]] == 0).all())
        out["fine_pruning"] = {
            "pruned_channels": pruning["pruned"], "channels": pruning["channels"], "curve": pruning["curve"],
            "pruned": after_prune, "finetuned": score_model(model, x_eval, y_eval, apply, target).as_dict(),
        }  # fmt: skip
        _curve_png(folder / "fine_pruning.png", pruning["curve"])
    write_json_atomic(folder / "defence.json", out)
    return out


def badnets_control(data: ImageSet, folder: Path, quick: bool = False, seed: int = 0) -> dict[str, Any]:
    """Positive control (spec §6.17): a toy net trained on the *full* digits train set with 10 % BadNets poisoning
    (white 2×2 square → label 0); Neural Cleanse should flag label 0 with anomaly index > 2."""
    rng = np.random.default_rng(seed)
    mean, std = data.mean_std(data.train_x)
    mask = square_mask(data.channels, data.im_size, 2)
    white = ((1.0 - mean) / std).expand(1, -1, *data.im_size)
    x, y = data.train_x.clone(), data.train_y.clone()
    poison = torch.from_numpy(rng.permutation(len(y))[: len(y) // 10])
    x[poison] = stamp(x[poison], white, mask)
    y[poison] = 0

    def apply(batch: torch.Tensor) -> torch.Tensor:
        return stamp(batch, white.to(batch.device), mask.to(batch.device))

    cfg = EvalConfig(epochs=20 if quick else 60, lr=0.05, batch=64)
    _, victim = evaluate_one(0, x, y, data.test_x, data.test_y, "toy", cfg, seed, None, 0, data.num_classes)
    result = run_defences(victim, data, apply, 0, folder, quick, seed, which=("neural-cleanse",))
    return result


def trigger_function(trigger: str | Path | None, data: ImageSet, device: torch.device) -> tuple[Apply, int]:
    """``trigger.pt`` as a stamping function and its target label; without one, the white 2×2 square → label 0."""
    if trigger is not None:
        trig = load_trigger(trigger)
        if tuple(trig["trigger"].shape[1:]) != (data.channels, *data.im_size):
            raise ConfigError(
                f"{trigger}: trigger of shape {tuple(trig['trigger'].shape[1:])} does not fit {data.name} images "
                f"{(data.channels, *data.im_size)}"
            )
        pattern, paste = (
            trig["trigger"].float().to(device),
            trig.get("paste_mask", trig["mask"]).float().to(device),
        )
        additive, target = trig["kind"] == "additive", int(trig["target_label"])
        if not 0 <= target < data.num_classes:
            raise ConfigError(f"{trigger}: target_label {target} is out of range (0..{data.num_classes - 1})")
    else:  # no trigger: the white-square probe
        mean, std = data.mean_std(data.test_x)
        paste = square_mask(data.channels, data.im_size, 2).to(device)
        pattern, additive, target = ((1.0 - mean) / std).expand(1, -1, *data.im_size).to(device), False, 0

    def apply(batch: torch.Tensor) -> torch.Tensor:
        return stamp(batch, pattern, paste, additive)

    return apply, target


def prepare_victim(
    distilled: str | Path, trigger: str | Path | None, data: ImageSet, device: torch.device, seed: int
) -> tuple[nn.Module, Apply, int]:
    """The victim (evaluation net 0 trained on the distilled set with its run's evaluation protocol, i.e. the first
    network ``evaluate`` scores), the trigger as a function and the target label."""
    record = load_distilled(distilled)
    if record["dataset"] != data.name or tuple(record["images"].shape[1:]) != (data.channels, *data.im_size):
        raise ConfigError(f"{distilled}: distilled from {record['dataset']}, not from {data.name} images")
    apply, target = trigger_function(trigger, data, device)
    config = record.get("config") or {}
    cfg = EvalConfig(**config["evaluation"]) if isinstance(config.get("evaluation"), dict) else EvalConfig()
    run_seed = int(record.get("seed", seed))
    images, labels = record["images"].float().to(device), record["labels"].long().to(device)
    _, victim = evaluate_one(0, images, labels, data.test_x.to(device), data.test_y.to(device),
                             cfg.arch or record.get("arch", "toy"), cfg, run_seed, None, target, data.num_classes)  # fmt: skip
    return victim, apply, target


def read_victim(path: str | Path, arch: str | None, dataset: str | None) -> tuple[dict[str, Any], str, str]:
    """An external model's weights: a ``victim.pt`` (``state_dict``, ``arch``, ``dataset``, as ``defend`` writes
    it) or a bare state dict; ``arch``/``dataset`` given here override the file's. One-line errors."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError(f"{path}: cannot be read as a model weights file ({type(err).__name__})") from None
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        state, arch, dataset = raw["state_dict"], arch or raw.get("arch"), dataset or raw.get("dataset")
    elif isinstance(raw, dict) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        state = raw
    else:
        raise ConfigError(f"{path}: expected a state dict or a dictionary with a state_dict field")
    if not arch or not dataset:
        missing = " and ".join(n for n, v in (("--arch", arch), ("--dataset", dataset)) if not v)
        raise ConfigError(f"{path}: the file names no {missing.replace('--', '')}; pass {missing}")
    return state, str(arch), str(dataset)


def load_victim(
    path: str | Path, state: dict[str, Any], arch: str, data: ImageSet, device: torch.device
) -> nn.Module:
    """The weights in a freshly built ``arch`` network for ``data``'s images (strict: every key and shape)."""
    net = build_network(arch, data.channels, data.num_classes, data.im_size, seed=0)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(
            f"{path}: the weights do not fit a {arch} network for {data.name} images ({first})"
        ) from None
    return net.to(device).eval()


def defend(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """The verb: the victim of ``--distilled`` (and ``--trigger``) or the external model of ``--victim``, then the
    requested defences; a distilled-set victim is also saved as ``victim.pt`` (what ``--victim`` reads)."""
    if (args.distilled is None) == (args.victim is None):
        raise ConfigError(
            "defend needs exactly one of --distilled (train the victim) and --victim (audit weights)"
        )
    if args.victim is not None:
        state, arch, dataset = read_victim(args.victim, args.arch, args.dataset)
        data = load_dataset(dataset, getattr(args, "data_root", None))
        victim = load_victim(args.victim, state, arch, data, run.device)
        apply, target = trigger_function(args.trigger, data, run.device)
    else:
        record = load_distilled(args.distilled)
        data = load_dataset(record["dataset"], getattr(args, "data_root", None))
        victim, apply, target = prepare_victim(args.distilled, args.trigger, data, run.device, args.seed)
        state = {k: v.detach().cpu() for k, v in victim.state_dict().items()}
        save_torch_atomic(
            {"state_dict": state, "arch": victim.arch, "dataset": data.name}, run.dir / "victim.pt"
        )
    which = ALL if args.defence == "all" else (args.defence,)
    result = run_defences(victim, data, apply, target, run.dir, args.quick, args.seed, args.n_clean, which)
    return {"defence": args.defence, "summary": {k: v for k, v in result.items() if k != "fine_pruning"}}
