"""Command line of ``lidar-robust``: Lightning verbs (train, evaluate) and the package verbs.

Declarations only (no torch/numpy at import): ``--help``, ``--version`` and ``VERB --help`` answer at once.
"""

from __future__ import annotations

from pathlib import Path

from paperlab_core.cli import EVALUATE, TRAIN, build_cli
from paperlab_core.verbs import (
    DEVICE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    THREADS,
    Verb,
    comma_list,
    existing_dir,
    existing_file,
    option,
    positive_int,
)

from .scales import QUICK_STEPS, SCALES

#: ``lidar_robust.corruptions.registry.REGISTRIES`` (+ both)
REGISTRY_CHOICES = ("semantickitti_c", "robo3d", "both")
#: ``lidar_robust.corruptions.fog.FOG_KNOBS``
FOG_KNOB_CHOICES = ("beta", "alpha")
#: ``lidar_robust.corruptions.snow.TARGET_POWER``
TARGET_POWER_CHOICES = ("official", "range_normalised")
#: ``lidar_robust.metrics.ABSENT``
ABSENT_CHOICES = ("nan", "zero")
LAYOUT_CHOICES = ("2dpass", "sequences")

main = build_cli(
    "lidar_robust",
    model="lidar_robust.module:SegmentationModule",
    data="lidar_robust.data:LidarDataModule",
    description="SemanticKITTI-C (Yan et al., arXiv 2301.00970): LiDAR segmentation robustness benchmark, "
    "corruption toolkit, MinkUNet/SalsaNext baselines and an RLSeg-style robust recipe",
    verbs=[
        TRAIN,
        EVALUATE,
        Verb(
            "reproduce",
            "lidar_robust.reproduce:reproduce",
            "baseline vs RLSeg-style on synthetic scans, evaluated on the synthetic SemanticKITTI-C (paper columns)",
            (
                *REPRODUCE_OPTIONS,
                option(
                    "--steps",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="training steps per model (default: the --scale's, "
                    + ", ".join(f"{name} {scale.steps}" for name, scale in SCALES.items())
                    + f"; --quick {QUICK_STEPS})",
                ),
                option(
                    "--val-scans",
                    type=positive_int,
                    default=None,
                    metavar="N",
                    help="validation scans corrupted for the benchmark (default 8; --quick 4)",
                ),
                option(
                    "--models",
                    default="minkunet,rlseg",
                    help="comma list of variants (minkunet, rlseg, salsanext, rlseg-no_<augmentation>, "
                    "rlseg-cylindrical, rlseg-mix3d_cyl, rlseg-half_scans, rlseg-bench_outliers, rlseg-r0.2, "
                    "rlseg-clean_tail, rlseg-cyl_coarse, minkunet-cylindrical; "
                    "default minkunet,rlseg)",
                ),
                option(
                    "--azimuth",
                    type=positive_int,
                    default=512,
                    help="azimuth steps of the synthetic 64-beam scans (default 512; 256 halves the cost)",
                ),
                option(
                    "--scale",
                    default="cpu",
                    choices=tuple(SCALES),
                    help="backbone width, voxel size and step budget: cpu = cr 0.25, 0.2 m voxels (default, the "
                    "reduced-scale tables); spec = cr 0.5, 0.15 m, 400 steps (spec §5's CPU protocol, budget "
                    "frozen; ≈ 2.5× the cost per step)",
                ),
                option(
                    "--ablations",
                    flag=True,
                    help="add the leave-one-out RLSeg-style variants and the tried recipe changes (meant for a GPU)",
                ),
                option(
                    "--real-tiny",
                    flag=True,
                    help="train on real scans 000000-000001, evaluate on 000002 (+ its SemanticKITTI-C); report only",
                ),
            ),
        ),
        Verb(
            "generate",
            "lidar_robust.commands:generate",
            "synthetic SemanticKITTI-format sequences (64-beam ray casting) → OUT/sequences/<seq>/",
            (
                option("--scans", type=positive_int, default=20, metavar="N", help="scans per sequence (20)"),
                option("--sequences", default="08", help="comma list of sequence ids (default 08)"),
                option("--beams", type=positive_int, default=64, help="beams (default 64)"),
                option(
                    "--azimuth", type=positive_int, default=1024, help="azimuth steps per ring (default 1024)"
                ),
                option("--range-noise", type=float, default=0.0, help="range noise σ in m (default 0)"),
                SEED,
                OUT,
            ),
            uses_torch=False,
        ),
        Verb(
            "corrupt",
            "lidar_robust.corrupt:corrupt",
            "write a SemanticKITTI-C (2DPASS layout) and/or Robo3D tree from a SemanticKITTI root",
            (
                option(
                    "root", type=existing_dir, metavar="ROOT", help="SemanticKITTI root holding sequences/"
                ),
                option("out", type=Path, metavar="OUT", help="output folder (ROOT itself suits 2DPASS)"),
                option(
                    "--registry",
                    default="semantickitti_c",
                    choices=REGISTRY_CHOICES,
                    help="which benchmark's corruptions (default semantickitti_c)",
                ),
                option(
                    "--subsets",
                    type=comma_list(),
                    default=None,
                    metavar="LIST",
                    help="only these subsets (names from `lidar-robust list`; clean_data included)",
                ),
                option(
                    "--sequences",
                    default="08",
                    help="comma list of sequences (default 08, the validation set)",
                ),
                option(
                    "--layout",
                    default="2dpass",
                    choices=LAYOUT_CHOICES,
                    help="2dpass: flat <subset>/velodyne (one sequence); sequences: <subset>/sequences/<seq>/",
                ),
                option(
                    "--workers",
                    type=positive_int,
                    default=1,
                    help="worker processes (outputs do not depend on it)",
                ),
                option(
                    "--fog-knob",
                    default="beta",
                    choices=FOG_KNOB_CHOICES,
                    help="what the fog level sets: beta (α drawn per scan) or alpha (default beta)",
                ),
                option(
                    "--snow-target-power",
                    default=None,
                    choices=TARGET_POWER_CHOICES,
                    help="snow target power: official (the code quirk; default) or range_normalised",
                ),
                option("--overwrite", flag=True, help="replace existing subset folders"),
                SEED,
            ),
            uses_torch=False,
        ),
        Verb(
            "benchmark",
            "lidar_robust.benchmark:benchmark_verb",
            "evaluate a checkpoint on a SemanticKITTI-C / Robo3D root: per-subset mIoU, the paper's columns, mCE/mRR",
            (
                option(
                    "--ckpt", type=existing_file, required=True, metavar="PATH", help="a `train` checkpoint"
                ),
                option(
                    "--root",
                    type=existing_dir,
                    required=True,
                    metavar="DIR",
                    help="folder holding SemanticKITTI-C/<subset>/ and/or Robo3D <corruption>/<level>/",
                ),
                option(
                    "--registry",
                    default="both",
                    choices=REGISTRY_CHOICES,
                    help="which subsets (default both)",
                ),
                option(
                    "--num-vote",
                    type=positive_int,
                    default=1,
                    help="test-time votes (rotations about z; 2DPASS's robust_test.py uses 12)",
                ),
                option(
                    "--ce-baseline",
                    type=existing_file,
                    default=None,
                    metavar="FILE",
                    help="benchmark.json of our baseline for Robo3D CE (default: published MinkUNet-18)",
                ),
                option(
                    "--absent",
                    default="nan",
                    choices=ABSENT_CHOICES,
                    help="absent classes: nan (2DPASS nanmean, default) or zero",
                ),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "metrics",
            "lidar_robust.commands:metrics",
            "RmIoU/mR (and mCE/mRR) from a CSV of per-subset mIoUs (columns: subset,miou)",
            (
                option(
                    "--csv",
                    type=existing_file,
                    required=True,
                    metavar="FILE",
                    help="CSV with subset,miou rows",
                ),
            ),
            run_dir=False,
            uses_torch=False,
        ),
        Verb(
            "fog-lut",
            "lidar_robust.commands:fog_lut",
            "regenerate the fog lookup tables (running-max shortcut) and compare them with the shipped ones",
            (
                option(
                    "--alphas",
                    type=comma_list(),
                    default=None,
                    metavar="LIST",
                    help="attenuation coefficients (default 0,0.005,0.01,0.02,0.03,0.06)",
                ),
                OUT,
            ),
            uses_torch=False,
        ),
        Verb(
            "inspect",
            "lidar_robust.commands:inspect",
            "ring-ID recovery, range/intensity summary and label histogram of a .bin scan",
            (option("scan", type=existing_file, metavar="SCAN.bin", help="a SemanticKITTI .bin scan"),),
            run_dir=False,
            uses_torch=False,
        ),
        Verb(
            "show",
            "lidar_robust.commands:show",
            "bird's-eye-view PNG of a scan coloured by label, before and after a corruption",
            (
                option("scan", type=existing_file, metavar="SCAN.bin", help="a SemanticKITTI .bin scan"),
                option(
                    "--corruption",
                    default="fog_heavy",
                    help="subset name from `lidar-robust list` (fog_heavy)",
                ),
                option(
                    "--range",
                    type=float,
                    default=40.0,
                    dest="extent",
                    help="half-width of the view in m (40)",
                ),
                SEED,
                OUT,
            ),
            uses_torch=False,
        ),
        Verb(
            "bench",
            "lidar_robust.bench:bench",
            "performance gates: vectorised corruptions vs per-point references, fog time, sparse conv → bench.json",
            (
                option(
                    "--what", default="all", choices=("corruptions", "sparse", "all"), help="what to time"
                ),
                option(
                    "--root",
                    type=existing_dir,
                    default=None,
                    metavar="DIR",
                    help="SemanticKITTI root with sequences/00 (default: ../shared/data/semantickitti)",
                ),
                option(
                    "--repeats", type=positive_int, default=5, help="median of this many runs (default 5)"
                ),
                option("--scans", type=positive_int, default=3, help="scans timed (default 3)"),
                THREADS,
                OUT,
            ),
        ),
        Verb(
            "list",
            "lidar_robust.commands:list_registries",
            "registries: corruptions (both benchmarks), models, sparse backends, metrics",
            (),
            run_dir=False,
            uses_torch=False,
        ),
    ],
    trainer_defaults={"devices": 1},
)

__all__ = [
    "ABSENT_CHOICES",
    "FOG_KNOB_CHOICES",
    "LAYOUT_CHOICES",
    "REGISTRY_CHOICES",
    "TARGET_POWER_CHOICES",
    "main",
]

if __name__ == "__main__":
    raise SystemExit(main())
