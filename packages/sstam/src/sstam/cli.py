"""Command line: ``sstam score | train | evaluate | reproduce | synth | ladder | fit-fusion | fr | bench``.

Declarations only (string targets, literal choices), so ``--help``, ``--version`` and ``VERB --help`` never
import torch, PyAV or Lightning.
"""

from __future__ import annotations

from paperlab_core.cli import EVALUATE, TRAIN, LightningVerb, build_cli
from paperlab_core.verbs import (
    DEVICE,
    OUT,
    REPRODUCE_OPTIONS,
    SEED,
    THREADS,
    Verb,
    comma_list,
    option,
    positive_float,
    positive_int,
)
from sstam.inputs import parse_size, video_file

#: sstam.synth.PEAS
PEAS = ("blurring", "blocking", "bleeding", "ringing", "flickering", "floating")
#: sstam.inputs.RAW_BPP
PIX_FMTS = ("yuv420p", "yuv444p", "gray")
#: sstam.saliency.STATIC_MODELS
SALIENCY_CHOICES = ("spectral", "fine_grained", "none")


def _int_list(text: str) -> list[int]:
    try:
        return [int(item) for item in comma_list()(text)]
    except ValueError:
        import argparse

        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {text!r}") from None


SCORE = Verb(
    "score",
    "sstam.commands:score",
    "score a video (no reference): SSTAM score, six PEA intensities, optional per-frame table and heat maps",
    (
        option(
            "video",
            type=video_file,
            metavar="VIDEO",
            help="mp4/mkv/mov/webm/avi/y4m, or raw .yuv with --size",
        ),
        option("--json", flag=True, help="print one JSON object (schema in the README)"),
        option("--per-frame", flag=True, help="per-frame intensities (a CSV table, or arrays in --json)"),
        option(
            "--saliency-png",
            type=str,
            default=None,
            metavar="DIR",
            help="write frame_<t>_saliency.png and frame_<t>_<pea>.png heat maps into DIR",
        ),
        option(
            "--png-stride", type=positive_int, default=8, metavar="N", help="heat maps every N frames (8)"
        ),
        option(
            "--ckpt",
            default="default",
            metavar="default|PATH",
            help="model: 'default' (shipped bundle), a bundle folder or a .ckpt from `sstam train`",
        ),
        option("--size", type=parse_size, default=None, metavar="WxH", help="frame size of a raw .yuv"),
        option("--fps", type=positive_float, default=None, help="frame rate of a raw .yuv (default 25)"),
        option("--pix-fmt", default="yuv420p", choices=PIX_FMTS, help="pixel format of a raw .yuv (yuv420p)"),
        option("--max-frames", type=positive_int, default=None, metavar="N", help="score at most N frames"),
        option(
            "--frame-stride",
            type=positive_int,
            default=None,
            metavar="K",
            help="run the spatial detectors on every K-th frame (default: the bundle's, 1)",
        ),
        option(
            "--saliency",
            default=None,
            choices=SALIENCY_CHOICES,
            help="static saliency: spectral (default), fine_grained, or none (uniform weights)",
        ),
        THREADS,
        DEVICE,
    ),
    run_dir=False,
    epilog="Errors (missing/unreadable/empty/undecodable file, no video stream, a single frame, a raw .yuv whose "
    "size does not divide the file, frames smaller than the patch) print one line and exit with status 2.",
)

main = build_cli(
    "sstam",
    model="sstam.module:SSTAMModule",
    data="sstam.data:SSTAMData",
    description="SSTAM: saliency-aware spatio-temporal artifact measurement for compressed video "
    "(Lin et al., IEEE SPL 2023) — a no-reference video quality tool. The temporal variant 'sstam_ours' is ours, "
    "not the paper's (its TimeSformer modification is unknown).",
    verbs=[
        SCORE,
        LightningVerb(
            "train",
            TRAIN.help + "; --stage spatial|temporal|fusion|all; writes a bundle into the run folder",
            renames={"--stage": "--data.stage"},
        ),
        LightningVerb(
            "evaluate",
            EVALUATE.help + "; detector AUCs on held-out content (+ fusion CV with --data.mos_csv)",
            stages=("test",),
            needs_ckpt=True,
            restores_config=True,
            renames={"--n-splits": "--model.eval_splits"},
        ),
        Verb(
            "bench",
            "sstam.bench:bench_verb",
            "time the pipeline on an in-memory pan (frames/s per stage); --video adds decode + load (spec §7 gates)",
            (
                option(
                    "--size", type=parse_size, default=(256, 256), metavar="WxH", help="frame size (256x256)"
                ),
                option("--frames", type=positive_int, default=64, metavar="N", help="frames (64)"),
                option(
                    "--config",
                    default="default",
                    choices=("default", "paper"),
                    help="detector sizes of a preset (random weights) when --ckpt none (default)",
                ),
                option(
                    "--ckpt",
                    default="none",
                    metavar="none|default|PATH",
                    help="time a trained bundle instead of a preset's architecture (none)",
                ),
                option(
                    "--only", default=None, choices=("saliency", "spatial", "temporal"), help="time one stage"
                ),
                option(
                    "--precision",
                    default=None,
                    choices=("32", "bf16-mixed", "16-mixed"),
                    help="autocast precision on GPUs (default 32)",
                ),
                option("--video", flag=True, help="also x264-encode the pan and time score() of the file"),
                option("--json", flag=True, help="print the record as JSON"),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "synth",
            "sstam.commands:synth",
            "synthetic per-artifact datasets in the PEA-folder layout (<out>/<pea>/{positive,negative}/, meta.csv)",
            (
                OUT,
                option(
                    "--peas",
                    type=comma_list(PEAS),
                    default=list(PEAS),
                    metavar="LIST",
                    help="PEAs to generate (default all six)",
                ),
                option(
                    "--levels",
                    type=_int_list,
                    default=None,
                    metavar="LIST",
                    help="spatial severity levels to keep besides clean (default all)",
                ),
                option(
                    "--n-per-level",
                    type=positive_int,
                    default=20,
                    metavar="N",
                    help="patches per PEA level per split (temporal: N/2 cubes per class; default 20)",
                ),
                option("--patch", type=positive_int, default=64, metavar="P", help="patch size (64)"),
                SEED,
            ),
            uses_torch=False,
        ),
        Verb(
            "ladder",
            "sstam.commands:ladder",
            "x264 CRF / x265 QP ladders (+ I-frame pumping pairs) with VMAF/PSNR/SSIM → ladder.csv",
            (
                option(
                    "src", metavar="SRC", help="a video, a raw .yuv (with --size) or still:<name> (a pan)"
                ),
                OUT,
                option(
                    "--codec",
                    type=comma_list(("x264", "x265")),
                    default=["x264", "x265"],
                    metavar="LIST",
                    help="codecs (x264,x265)",
                ),
                option("--crf", type=_int_list, default=[28, 35, 42, 51], metavar="LIST", help="x264 CRFs"),
                option("--qp", type=_int_list, default=[32, 37, 42, 51], metavar="LIST", help="x265 QPs"),
                option(
                    "--pumping",
                    flag=True,
                    help="also the I-frame-pumping pair (CRF 38 keyint 8 vs matched CRF)",
                ),
                option(
                    "--metrics",
                    type=comma_list(("vmaf", "psnr", "ssim")),
                    default=["vmaf", "psnr", "ssim"],
                    metavar="LIST",
                    help="full-reference metrics (vmaf,psnr,ssim)",
                ),
                option("--size", type=parse_size, default=None, metavar="WxH", help="size of a raw .yuv SRC"),
                option("--fps", type=positive_float, default=None, help="frame rate of a raw .yuv SRC"),
                option("--frames", type=positive_int, default=64, metavar="N", help="frames (64)"),
                option(
                    "--pan-size",
                    type=positive_int,
                    default=256,
                    metavar="S",
                    help="pan window of still: (256)",
                ),
            ),
            uses_torch=False,
        ),
        Verb(
            "fr",
            "sstam.commands:fr",
            "full-reference VMAF (v0.6.1) / PSNR-Y / SSIM of DIST against REF via the imageio-ffmpeg binary",
            (
                option("ref", type=video_file, metavar="REF", help="reference video"),
                option("dist", type=video_file, metavar="DIST", help="distorted video"),
                option("--json", flag=True, help="print averages and per-frame values as JSON"),
                option(
                    "--metrics",
                    type=comma_list(("vmaf", "psnr", "ssim")),
                    default=["vmaf", "psnr", "ssim"],
                    metavar="LIST",
                    help="metrics (vmaf,psnr,ssim)",
                ),
                option(
                    "--ref-size", type=parse_size, default=None, metavar="WxH", help="size of a raw .yuv REF"
                ),
                option(
                    "--dist-size",
                    type=parse_size,
                    default=None,
                    metavar="WxH",
                    help="size of a raw .yuv DIST",
                ),
                option("--fps", type=positive_float, default=None, help="frame rate of raw .yuv inputs"),
            ),
            run_dir=False,
            uses_torch=False,
        ),
        Verb(
            "fit-fusion",
            "sstam.commands:fit_fusion_verb",
            "refit the fusion on a MOS CSV with frozen detectors; content-disjoint CV; writes a new bundle",
            (
                option(
                    "--ckpt", default="default", metavar="default|PATH", help="detectors: bundle or .ckpt"
                ),
                option(
                    "--data.mos_csv",
                    required=True,
                    metavar="CSV",
                    help="filename,mos[,content,width,height,fps]",
                ),
                option("--data.video_root", required=True, metavar="DIR", help="folder of the CSV's videos"),
                option(
                    "--data.score_direction",
                    default="higher_better",
                    choices=("higher_better", "lower_better"),
                    help="lower_better for DMOS (negated before fitting)",
                ),
                option(
                    "--data.content_regex",
                    default=r"^([A-Za-z]+)",
                    metavar="RE",
                    help="content id from the file name (first group)",
                ),
                option("--data.size", default=None, metavar="WxH", help="size of raw .yuv files"),
                option("--fusion", default="svr", choices=("svr", "nnls"), help="regressor (svr)"),
                option(
                    "--features",
                    default="all",
                    choices=("all", "spatial", "temporal"),
                    help="feature set (all)",
                ),
                option("--n-splits", type=positive_int, default=100, metavar="N", help="CV splits (100)"),
                THREADS,
                DEVICE,
                OUT,
            ),
        ),
        Verb(
            "reproduce",
            "sstam.reproduce:reproduce",
            "the codec-ladder / saliency-awareness / detector study (spec §5); --quick: x264 only, 3 pans",
            (
                *REPRODUCE_OPTIONS,
                option(
                    "--shared-data",
                    default=None,
                    metavar="DIR",
                    help="../shared/data (default: found automatically; 'none' hides it)",
                ),
                option(
                    "--ckpt",
                    default="default",
                    metavar="default|PATH",
                    help="the model under study: the shipped bundle (default), a bundle folder or a .ckpt",
                ),
                option(
                    "--cells",
                    type=comma_list(),
                    default=None,
                    metavar="PREFIX,...",
                    help="run only the cells whose key starts with one of these prefixes "
                    "(detectors/spatial, detectors/temporal, fusion, codec, real, saliency)",
                ),
                option(
                    "--codecs",
                    type=comma_list(["x264", "x265"]),
                    default=None,
                    metavar="LIST",
                    help="codec ladders (default: x264 with --quick, x264,x265 otherwise)",
                ),
            ),
        ),
    ],
    trainer_defaults={"devices": 1},
)

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
