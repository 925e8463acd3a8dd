"""What the benchmark's global outliers do to the two trained models (spec §6.15 miss), and a test-time filter.

Run: ``uv run python packages/lidar_robust/docs/outlier_smear.py [--seed 0] [--out FILE.json]`` (trains the
MinkUNet-style baseline and the RLSeg-style recipe exactly as a ``reproduce --steps 120 --val-scans 4 --azimuth
256`` cell does, ≈ 2 CPU-min each, then only inference). On clean and global_{light,moderate,heavy} of the 4
validation scans it reports, for both models:

* per-class IoU (classes present in the validation scans);
* accuracy of the *real* points by distance to the nearest injected outlier, and how many of them change their
  prediction against the clean scan (does a model smear wrong classes around the outliers?);
* the classes predicted for the injected points (label 0: ignored by mIoU and by the training loss);
* a statistical outlier-removal pre-filter at test time (ours, a diagnostic): a point is dropped when the mean
  distance to its 8 nearest neighbours divided by its range exceeds the 99th percentile of that score on 8 clean
  *training* scans; dropped points take the prediction of the nearest kept point.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
from lidar_robust.formats import CLASS_NAMES
from lidar_robust.metrics import confusion_matrix, iou_per_class
from lidar_robust.module import predict_samples
from lidar_robust.reproduce import _clean_val, _corrupted, train_network
from lidar_robust.synthetic import SensorConfig, generate_scan, scan_seed
from scipy.spatial import cKDTree

LEVELS = ("global_light", "global_moderate", "global_heavy")
BINS = (0.0, 0.5, 1.0, 2.0, np.inf)
K = 8


def sor_score(xyz: np.ndarray) -> np.ndarray:
    """Mean distance to the K nearest neighbours over the point's range (LiDAR spacing grows with range)."""
    dist, _ = cKDTree(xyz).query(xyz, k=K + 1)
    return dist[:, 1:].mean(1) / np.maximum(np.linalg.norm(xyz, axis=1), 1.0)


def sor_predict(net: torch.nn.Module, sample: dict, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictions with the pre-filter: the network sees the kept points only; dropped points copy the nearest
    kept point's class. Returns (predictions, kept mask)."""
    xyz = sample["points"][:, :3]
    kept = sor_score(xyz) <= threshold
    sub = {k: v[kept] for k, v in sample.items()}
    pred_kept = predict_samples(net, [sub], torch.device("cpu"))[0]
    _, nearest = cKDTree(xyz[kept]).query(xyz)
    return pred_kept[nearest], kept


def miou_of(preds: list[np.ndarray], samples: list[dict]) -> tuple[float, np.ndarray]:
    confusion = sum(confusion_matrix(p, s["labels"]) for p, s in zip(preds, samples, strict=True))
    iou = iou_per_class(confusion)
    return float(np.nanmean(iou)) * 100.0, iou * 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=120, help="training steps (120 = the reproduce cells)")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("PAPERLAB_THREADS", "1")))
    from lidar_robust.data import sample_from_scan

    val = 4
    clean = [sample_from_scan(s.points, s.labels, s.ring) for s in _clean_val(val, 256)]
    subsets = {"clean": clean, **{name: _corrupted(name, val, 256) for name in LEVELS}}
    train_xyz = [
        generate_scan(scan_seed(0, "00", i), SensorConfig(azimuth=256)).points[:, :3] for i in range(8)
    ]
    threshold = float(np.quantile(np.concatenate([sor_score(x) for x in train_xyz]), 0.99))
    out: dict = {"seed": args.seed, "sor_threshold": threshold, "models": {}}
    print(f"SOR threshold (99th percentile of clean training scans): {threshold:.4f}")
    for variant in ("minkunet", "rlseg"):
        params = {"variant": variant, "seed": args.seed, "steps": args.steps, "cr": 0.25, "voxel_size": 0.2,
                  "data": "synthetic", "val_scans": val, "azimuth": 256}  # fmt: skip
        net = train_network(params, "cpu").net.eval()
        res: dict = {"miou": {}, "iou": {}, "sor": {}, "near": {}, "outlier_pred": {}}
        clean_pred = predict_samples(net, clean, torch.device("cpu"))
        for name, samples in subsets.items():
            preds = clean_pred if name == "clean" else predict_samples(net, samples, torch.device("cpu"))
            res["miou"][name], iou = miou_of(preds, samples)
            res["iou"][name] = {c: round(float(v), 2) for c, v in zip(CLASS_NAMES[1:], iou, strict=True)
                                if np.isfinite(v)}  # fmt: skip
            filtered = [sor_predict(net, s, threshold) for s in samples]
            n_real = [len(c["points"]) for c in clean]
            real_dropped = sum(int((~k[:n]).sum()) for (_, k), n in zip(filtered, n_real, strict=True))
            out_dropped = sum(int((~k[n:]).sum()) for (_, k), n in zip(filtered, n_real, strict=True))
            n_out = sum(len(s["points"]) - n for s, n in zip(samples, n_real, strict=True))
            res["sor"][name] = {
                "miou": miou_of([p for p, _ in filtered], samples)[0],
                "real_dropped": real_dropped / sum(n_real),
                "outliers_dropped": out_dropped / n_out if n_out else None,
            }
            if name == "clean":
                continue
            rows = []
            hist = np.zeros(len(CLASS_NAMES), np.int64)
            # per distance bin: points, correct on the clean scan, correct on the corrupted scan, flipped
            per_bin = np.zeros((len(BINS) - 1, 4), np.int64)
            for sample, pred, cpred, n in zip(samples, preds, clean_pred, n_real, strict=True):
                labels = sample["labels"][:n]
                hist += np.bincount(pred[n:], minlength=len(CLASS_NAMES))
                if len(sample["points"]) == n:
                    continue
                dist, _ = cKDTree(sample["points"][n:, :3]).query(sample["points"][:n, :3])
                which = np.digitize(dist, BINS[1:-1])
                valid = labels != 0
                for b in range(len(BINS) - 1):
                    m = valid & (which == b)
                    per_bin[b] += [m.sum(), (cpred[:n][m] == labels[m]).sum(), (pred[:n][m] == labels[m]).sum(),
                                   (pred[:n][m] != cpred[:n][m]).sum()]  # fmt: skip
            for b in range(len(BINS) - 1):
                total, ok_clean, ok_corr, flipped = (int(v) for v in per_bin[b])
                rows.append({"bin_m": f"{BINS[b]}-{BINS[b + 1]}", "points": total,
                             "acc_clean": ok_clean / max(total, 1) * 100, "acc_corrupted": ok_corr / max(total, 1) * 100,
                             "flipped": flipped / max(total, 1) * 100})  # fmt: skip
            res["near"][name] = rows
            top = np.argsort(hist)[::-1][:4]
            res["outlier_pred"][name] = {
                CLASS_NAMES[c]: round(float(hist[c] / max(hist.sum(), 1)), 3) for c in top
            }
        out["models"][variant] = res
        print(f"\n== {variant} (seed {args.seed}) ==")
        for name in subsets:
            sor = res["sor"][name]
            print(f"{name:16s} mIoU {res['miou'][name]:6.2f} | with SOR {sor['miou']:6.2f} "
                  f"(real dropped {sor['real_dropped']:.3f}, outliers dropped {sor['outliers_dropped']})")  # fmt: skip
        for name in LEVELS[1:]:
            print(f"{name}: real points by distance to the nearest outlier")
            for row in res["near"][name]:
                print(f"  {row['bin_m']:>9s} m  n={row['points']:6d}  acc clean {row['acc_clean']:5.1f}  "
                      f"acc corrupted {row['acc_corrupted']:5.1f}  flipped {row['flipped']:5.1f} %")  # fmt: skip
            print(f"  outliers predicted as: {res['outlier_pred'][name]}")
    classes = [c for c in CLASS_NAMES[1:] if c in out["models"]["minkunet"]["iou"]["clean"]]
    print("\nper-class IoU: baseline / RLSeg-style (clean | global_heavy)")
    for c in classes:
        b, r = out["models"]["minkunet"]["iou"], out["models"]["rlseg"]["iou"]
        print(f"  {c:14s} {b['clean'].get(c, float('nan')):6.1f} / {r['clean'].get(c, float('nan')):6.1f} | "
              f"{b['global_heavy'].get(c, float('nan')):6.1f} / {r['global_heavy'].get(c, float('nan')):6.1f}")  # fmt: skip
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(out, handle, indent=1)


if __name__ == "__main__":
    main()
