"""Evaluation of a trained network on a set of corrupted scans: per-subset mIoU and the paper's columns."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from lidar_robust.corruptions.registry import Subset, apply, scan_seed
from lidar_robust.data import sample_from_scan
from lidar_robust.formats import Scan
from lidar_robust.metrics import SKC_TYPES, confusion_matrix, miou, skc_summary
from lidar_robust.module import predict_samples


def corrupt_samples(scans: Sequence[Scan], subset: Subset, seed: int, registry: str, sequence: str = "08"
                    ) -> list[dict]:  # fmt: skip
    """Corrupt every clean scan with its per-scan seed and return model samples (labels → learning ids)."""
    out = []
    for frame, scan in enumerate(scans):
        corrupted, _ = apply(subset, scan, scan_seed(seed, registry, subset.name, sequence, frame))
        out.append(sample_from_scan(corrupted.points, corrupted.labels, corrupted.ring))
    return out


def subset_miou(
    net: torch.nn.Module, samples: Sequence[dict], device: torch.device, absent: str = "nan"
) -> float:
    """mIoU (%) with the confusion matrix accumulated over all scans of the subset (fresh per subset)."""
    confusion = np.zeros((20, 20), dtype=np.int64)
    for sample, pred in zip(samples, predict_samples(net, samples, device), strict=True):
        confusion += confusion_matrix(pred, sample["labels"])
    return miou(confusion, absent) * 100.0


def evaluate_subsets(
    net: torch.nn.Module, clean: Sequence[dict], subsets: Iterable[tuple[str, Callable[[], list[dict]]]],
    device: torch.device, absent: str = "nan",
) -> dict[str, float]:  # fmt: skip
    """``{"clean": mIoU, subset: mIoU, ...}`` (subsets built lazily, one at a time)."""
    out = {"clean": subset_miou(net, clean, device, absent)}
    for name, build in subsets:
        out[name] = subset_miou(net, build(), device, absent)
    return out


def paper_columns(per_subset: Mapping[str, float]) -> dict[str, float] | None:
    """Clean, RmIoU, mR and per-type mIoU/R when every SemanticKITTI-C subset is present."""
    needed = [s for subsets in SKC_TYPES.values() for s in subsets]
    if "clean" not in per_subset or any(s not in per_subset for s in needed):
        return None
    return skc_summary(per_subset, per_subset["clean"])


def summarize_subsets(per_subset: Mapping[str, float], ce_baseline: Mapping[str, Sequence[float]] | None = None
                      ) -> dict[str, float]:  # fmt: skip
    """Everything computable from ``{subset: mIoU %}``: the SemanticKITTI-C columns when all 16 subsets and clean
    are there, Robo3D CE/RR/mCE/mRR when all 8 × 3 Robo3D folders are there (``<corruption>/<level>`` keys)."""
    from lidar_robust.metrics import LEVELS, ROBO3D_TYPES, published, robo3d_summary

    out: dict[str, float] = dict(per_subset)
    columns = paper_columns(per_subset)
    if columns:
        out.update({f"skc_{k}": v for k, v in columns.items()})
    robo = {t: [per_subset.get(f"{t}/{lvl}") for lvl in LEVELS] for t in ROBO3D_TYPES}
    if "clean" in per_subset and all(None not in v for v in robo.values()):
        base = ce_baseline or published("robo3d")["methods"]["MinkUNet-18"]["levels"]
        out.update({f"robo3d_{k}": v for k, v in robo3d_summary(robo, per_subset["clean"], base).items()})
    return out


def find_subsets(root: Path) -> dict[str, Path]:
    """Subset folders holding velodyne/ + labels/: ``SemanticKITTI-C/<subset>`` (2DPASS) and
    ``<corruption>/<level>`` (Robo3D), under ``root`` (or ``root`` being SemanticKITTI-C itself)."""
    from lidar_robust.corruptions.registry import ROBO3D, SEMANTICKITTI_C

    found: dict[str, Path] = {}
    skc = root / "SemanticKITTI-C" if (root / "SemanticKITTI-C").is_dir() else root
    for name in [*SEMANTICKITTI_C, "clean_data"]:
        folder = skc / name
        if (folder / "velodyne").is_dir():
            found["clean" if name == "clean_data" else name] = folder
    for name in ROBO3D:
        folder = root / name
        if (folder / "velodyne").is_dir():
            found[name] = folder
    return found


def read_folder(folder: Path) -> list[dict]:
    from lidar_robust.formats import read_scan

    samples = []
    for path in sorted((folder / "velodyne").glob("*.bin")):
        label = folder / "labels" / (path.stem + ".label")
        if not label.is_file():
            from paperlab_core.errors import MissingFileError

            raise MissingFileError("label file", label, "every corrupted scan needs its labels for mIoU")
        scan = read_scan(path, label)
        samples.append(
            {"points": scan.points, "labels": scan.learning, "ring": np.zeros(len(scan), np.int64)}
        )
    return samples


def load_network(ckpt: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    from lidar_robust.module import SegmentationModule
    from paperlab_core.errors import UserError

    try:
        module = SegmentationModule.load_from_checkpoint(str(ckpt), map_location="cpu")
    except Exception as err:  # not a checkpoint of this package
        raise UserError(
            f"checkpoint {ckpt} cannot be loaded as a lidar-robust model ({type(err).__name__})"
        ) from None
    return module.net.to(device).eval(), dict(module.hparams)


def voted_predictions(net: torch.nn.Module, samples: Sequence[dict], device: torch.device, votes: int
                      ) -> list[np.ndarray]:  # fmt: skip
    """Test-time augmentation: logits summed over ``votes`` rotations about z (1 = none)."""
    from lidar_robust.module import collate

    out = []
    with torch.inference_mode():
        for sample in samples:
            total = None
            for k in range(votes):
                angle = 2 * np.pi * k / votes
                c, s = np.cos(angle), np.sin(angle)
                pts = sample["points"].copy()
                pts[:, :2] = pts[:, :2] @ np.array([[c, s], [-s, c]], dtype=np.float32)
                batch = collate([{**sample, "points": pts}], device)
                logits = net(batch["points"], batch["batch"], 1).float().softmax(1)
                total = logits if total is None else total + logits
            out.append((total[:, 1:].argmax(1) + 1).cpu().numpy())
    return out


def benchmark_verb(args, run) -> dict:
    import json

    from lidar_robust.metrics import confusion_matrix
    from paperlab_core.errors import UserError
    from paperlab_core.results import Table

    device = run.device
    net, hparams = load_network(args.ckpt, device)
    found = find_subsets(Path(args.root))
    if args.registry == "semantickitti_c":
        found = {k: v for k, v in found.items() if "/" not in k}
    elif args.registry == "robo3d":
        found = {k: v for k, v in found.items() if "/" in k or k == "clean"}
    if not found:
        raise UserError(f"no SemanticKITTI-C or Robo3D subset folders under {args.root} "
                        "(expected SemanticKITTI-C/<subset>/velodyne or <corruption>/<level>/velodyne)")  # fmt: skip
    baseline = None
    if args.ce_baseline:
        data = json.loads(Path(args.ce_baseline).read_text())
        per = data.get("per_subset", data)
        baseline = {t: [per[f"{t}/{lvl}"] for lvl in ("light", "moderate", "heavy")]
                    for t in {k.split("/")[0] for k in per if "/" in k}}  # fmt: skip
    per_subset: dict[str, float] = {}
    for name, folder in found.items():
        samples = read_folder(folder)
        confusion = np.zeros((20, 20), dtype=np.int64)  # fresh per subset
        for sample, pred in zip(samples, voted_predictions(net, samples, device, args.num_vote), strict=True):
            confusion += confusion_matrix(pred, sample["labels"])
        per_subset[name] = miou(confusion, args.absent) * 100.0
        run.log(f"  {name:28s} mIoU {per_subset[name]:6.2f}  ({len(samples)} scans)")
    summary = summarize_subsets(per_subset, baseline)
    table = Table(["subset", "mIoU"], formats={"mIoU": ".2f"})
    for name, value in per_subset.items():
        table.add(name, value)
    run.write_json("benchmark.json", {"ckpt": str(args.ckpt), "model": hparams.get("name"), "num_vote": args.num_vote,
                                      "absent": args.absent, "per_subset": per_subset, "summary": summary})  # fmt: skip
    lines = [table.to_markdown()]
    if "skc_rmiou" in summary:
        lines.append(
            f"\nClean {summary['clean']:.2f} | RmIoU {summary['skc_rmiou']:.2f} | mR {summary['skc_mr']:.2f}"
        )
    if "robo3d_mce" in summary:
        lines.append(f"Robo3D mCE {summary['robo3d_mce']:.2f} | mRR {summary['robo3d_mrr']:.2f}")
    run.write_text("benchmark.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return {
        "per_subset": per_subset,
        **{k: v for k, v in summary.items() if k.startswith(("skc_", "robo3d_"))},
    }
