"""Full-reference metrics through the FFmpeg binary bundled in ``imageio-ffmpeg`` (spec §2.10, §8).

That binary (FFmpeg n9.x) has ``libvmaf`` with the built-in ``vmaf_v0.6.1`` model, ``psnr`` and ``ssim``; Debian's
ffmpeg has no libvmaf. **The distorted stream is the first input of libvmaf.** Both inputs are converted to
yuv420p; reported values are the per-frame mean of VMAF, PSNR-Y (dB; an identical frame counts as 100 dB) and
SSIM "All".
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from paperlab_core.errors import UserError
from sstam.errors import VideoInputError
from sstam.inputs import is_raw_yuv

METRICS = ("vmaf", "psnr", "ssim")
VMAF_MODEL = "vmaf_v0.6.1"
PSNR_CAP = 100.0


def ffmpeg_exe() -> str:
    """The imageio-ffmpeg binary (the one with libvmaf)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UserError("full-reference metrics need imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def input_args(
    path: str | Path, size: tuple[int, int] | None = None, fps: float | None = None, pix_fmt: str = "yuv420p"
) -> list[str]:
    """FFmpeg input options for ``path`` (raw ``.yuv`` needs its size)."""
    if is_raw_yuv(path):
        if size is None:
            from sstam.inputs import size_from_name

            size, name_fps = size_from_name(path)
            fps = fps or name_fps
            if size is None:
                raise VideoInputError(f"raw YUV {path} needs a size (--size WxH)")
        return [
            "-f",
            "rawvideo",
            "-pix_fmt",
            pix_fmt,
            "-s",
            f"{size[0]}x{size[1]}",
            "-r",
            f"{fps or 25}",
            "-i",
            str(Path(path).resolve()),
        ]
    return ["-i", str(Path(path).resolve())]


def _parse_psnr(text: str) -> list[float]:
    values = []
    for line in text.splitlines():
        match = re.search(r"psnr_y:(\S+)", line)
        if match:
            value = float(match[1]) if match[1] != "inf" else PSNR_CAP
            values.append(min(value, PSNR_CAP))
    return values


def _parse_ssim(text: str) -> list[float]:
    return [float(m[1]) for m in re.finditer(r"All:(\S+)", text)]


def full_reference(
    reference: str | Path,
    distorted: str | Path,
    metrics: tuple[str, ...] = METRICS,
    ref_options: dict[str, Any] | None = None,
    dist_options: dict[str, Any] | None = None,
    threads: int = 1,
) -> dict[str, Any]:
    """Mean and per-frame VMAF / PSNR-Y / SSIM of ``distorted`` against ``reference``."""
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)} (expected {', '.join(METRICS)})")
    ref_in = input_args(reference, **(ref_options or {}))
    dist_in = input_args(distorted, **(dist_options or {}))
    n = len(metrics)
    graph = [
        f"[0:v]format=yuv420p,setpts=PTS-STARTPTS,split={n}" + "".join(f"[d{i}]" for i in range(n)),
        f"[1:v]format=yuv420p,setpts=PTS-STARTPTS,split={n}" + "".join(f"[r{i}]" for i in range(n)),
    ]
    for i, metric in enumerate(metrics):
        if metric == "vmaf":
            graph.append(
                f"[d{i}][r{i}]libvmaf=model=version={VMAF_MODEL}:log_fmt=json:log_path=vmaf.json:n_threads={threads}"
            )
        elif metric == "psnr":
            graph.append(f"[d{i}][r{i}]psnr=stats_file=psnr.log")
        else:
            graph.append(f"[d{i}][r{i}]ssim=stats_file=ssim.log")
    with tempfile.TemporaryDirectory(prefix="sstam-fr-") as folder:
        command = [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-threads",
            str(threads),
            *dist_in,
            *ref_in,
            "-lavfi",
            ";".join(graph),
            "-f",
            "null",
            "-",
        ]
        proc = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            message = " ".join(proc.stderr.split())[-300:]
            raise UserError(f"ffmpeg could not compare {distorted} with {reference} ({message})")
        out: dict[str, Any] = {"per_frame": {}}
        base = Path(folder)
        if "vmaf" in metrics:
            data = json.loads((base / "vmaf.json").read_text())
            frames = [f["metrics"]["vmaf"] for f in data["frames"]]
            out["per_frame"]["vmaf"] = frames
            out["vmaf"] = float(data["pooled_metrics"]["vmaf"]["mean"])
        if "psnr" in metrics:
            frames = _parse_psnr((base / "psnr.log").read_text())
            out["per_frame"]["psnr"] = frames
            out["psnr"] = sum(frames) / len(frames) if frames else math.nan
        if "ssim" in metrics:
            frames = _parse_ssim((base / "ssim.log").read_text())
            out["per_frame"]["ssim"] = frames
            out["ssim"] = sum(frames) / len(frames) if frames else math.nan
    return out
