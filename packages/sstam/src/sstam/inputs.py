"""Cheap command-line value types (no numpy, no PyAV): they run while the arguments are parsed, so a missing,
unreadable or empty video is reported on one line before anything heavy is imported."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

#: bytes per pixel of the raw planar formats ``--pix-fmt`` accepts (spec §2.2)
RAW_BPP = {"yuv420p": 1.5, "yuv444p": 3.0, "gray": 1.0}
RAW_SUFFIXES = (".yuv", ".raw")
SIZE_TOKEN = re.compile(r"(?<![0-9])([0-9]{2,5})x([0-9]{2,5})(?![0-9])")
FPS_TOKEN = re.compile(r"(?<![0-9.])([0-9]+(?:\.[0-9]+)?)fps", re.IGNORECASE)


def parse_size(text: str) -> tuple[int, int]:
    """``"320x192"`` → (320, 192) (width, height)."""
    match = re.fullmatch(r"\s*([0-9]+)\s*[xX]\s*([0-9]+)\s*", str(text))
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise argparse.ArgumentTypeError(f"expected a size WxH such as 320x192, got {text!r}")
    return int(match[1]), int(match[2])


def video_file(text: str) -> Path:
    """A video path that exists, is a readable file and is not empty (spec §2.2 errors)."""
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"video {text} does not exist")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"video {text} is a folder (expected a video file)")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"video {text} is not readable (no read permission)")
    if path.stat().st_size == 0:
        raise argparse.ArgumentTypeError(f"video {text} is empty (0 bytes; expected a video file)")
    return path


def is_raw_yuv(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in RAW_SUFFIXES


def size_from_name(path: str | os.PathLike[str]) -> tuple[tuple[int, int] | None, float | None]:
    """The ``<W>x<H>`` token (only when exactly one) and an optional ``<N>fps`` token of a file name."""
    name = Path(path).name
    sizes = SIZE_TOKEN.findall(name)
    fps = FPS_TOKEN.findall(name)
    size = (int(sizes[0][0]), int(sizes[0][1])) if len(sizes) == 1 else None
    return size, (float(fps[0]) if len(fps) == 1 else None)


def raw_frame_bytes(width: int, height: int, pix_fmt: str) -> int:
    """Bytes of one planar frame (yuv420p: W·H + 2·(W/2)·(H/2))."""
    if pix_fmt not in RAW_BPP:
        raise ValueError(f"unsupported raw pixel format {pix_fmt!r} (expected one of {', '.join(RAW_BPP)})")
    return int(round(width * height * RAW_BPP[pix_fmt]))
