"""Codec-made data (spec §3a): PyAV ``libx264``/``libx265`` ladders (CRF/QP through ``stream.options``) and the
I-frame-pumping flicker pair, with VMAF/PSNR/SSIM proxy labels from :mod:`sstam.fr_metrics`.

Sources are yuv420p planes (RGB sources go through PyAV's converter once); the raw reference is written as
``.y4m``. Widths and heights must be even (yuv420p, x265).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from paperlab_core.errors import ConfigError, UserError

PUMPING_PARAMS = "keyint=8:min-keyint=8:scenecut=0:ipratio=4.0:bframes=0"
LADDER_FIELDS = ("filename", "content", "codec", "param", "bytes", "vmaf", "psnr", "ssim")
CODECS = {"x264": "libx264", "x265": "libx265"}


def have_codecs() -> bool:
    """PyAV with libx264 importable (the GPU machine has no PyAV)."""
    try:
        import av

        av.codec.Codec("libx264", "w")
    except Exception:
        return False
    return True


def _encoder_options(
    codec: str, crf: int | None, qp: int | None, preset: str, params: str | None, threads: int | None = None
) -> dict[str, str]:
    """``stream.options`` of a libx264/libx265 encoder at CRF/QP (``threads``: pin the encoder's thread count,
    e.g. 1 for output that does not depend on the machine; None: the encoder's default)."""
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r} (expected {', '.join(CODECS)})")
    options: dict[str, str] = {"preset": preset}
    if codec == "x264":
        if crf is not None:
            options["crf"] = str(crf)
        if qp is not None:
            options["qp"] = str(qp)
        if params:
            options["x264-params"] = params
        if threads is not None:
            options["threads"] = str(threads)
    else:
        x265 = ["log-level=error"]
        if crf is not None:
            x265.append(f"crf={crf}")
        if qp is not None:
            x265.append(f"qp={qp}")
        if params:
            x265.append(params)
        if threads is not None:
            x265 += [f"pools={threads}", f"frame-threads={threads}"]
        options["x265-params"] = ":".join(x265)
    return options


def _mux(
    target: Any,
    planes: Sequence[np.ndarray],
    codec: str,
    fps: float,
    options: dict[str, str],
    timestamps: bool = False,
) -> None:
    """Encode yuv420p ``planes`` into an mp4 at ``target`` (a path or a seekable binary file object).
    ``timestamps``: give every frame its pts (0, 1, 2, … in units of 1/fps); without them (the ladders' files)
    x264's rate control sees unset timestamps and its output can vary from run to run."""
    from fractions import Fraction

    import av

    height = planes[0].shape[0] * 2 // 3
    width = planes[0].shape[1]
    if width % 2 or height % 2:
        raise ConfigError(f"{codec} needs an even width and height, got {width}x{height}")
    with av.open(target, mode="w", format="mp4") as container:
        rate = Fraction(fps).limit_denominator(1001)
        stream = container.add_stream(CODECS[codec], rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = options
        for t, plane in enumerate(planes):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(plane), format="yuv420p")
            if timestamps:
                frame.pts, frame.time_base = t, 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def encode(
    planes: Sequence[np.ndarray],
    path: str | os.PathLike[str],
    codec: str = "x264",
    fps: float = 25.0,
    crf: int | None = None,
    qp: int | None = None,
    preset: str = "medium",
    params: str | None = None,
) -> Path:
    """Encode yuv420p planes ``[H·3/2, W]`` to ``path`` (mp4), atomically (temporary name, then rename)."""
    options = _encoder_options(codec, crf, qp, preset, params)
    height = planes[0].shape[0] * 2 // 3
    width = planes[0].shape[1]
    if width % 2 or height % 2:
        raise ConfigError(f"{codec} needs an even width and height, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        _mux(str(tmp), planes, codec, fps, options)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def codec_roundtrip(
    frames_rgb: np.ndarray,
    codec: str = "x264",
    crf: int | None = None,
    qp: int | None = None,
    preset: str = "medium",
    fps: float = 25.0,
) -> np.ndarray:
    """Encode RGB ``uint8 [T, H, W, 3]`` (even H, W) with ``codec`` at ``crf``/``qp`` and decode it again: the
    frames a viewer of the compressed clip sees (4:2:0, deblocked), ``uint8 [T, H, W, 3]`` (ours: codec patches
    for the spatial detectors' training)."""
    import tempfile

    from sstam.video_io import read_frames, rgb_to_yuv420p

    with tempfile.TemporaryDirectory(prefix="sstam-codec-") as folder:
        path = encode(rgb_to_yuv420p(frames_rgb), Path(folder) / "clip.mp4", codec, fps, crf, qp, preset)
        decoded, _ = read_frames(path)
    return decoded


def codec_roundtrip_in_memory(
    frames_rgb: np.ndarray,
    codec: str = "x264",
    crf: int | None = None,
    qp: int | None = None,
    preset: str = "medium",
    fps: float = 25.0,
    threads: int | None = 1,
) -> np.ndarray:
    """:func:`codec_roundtrip` without a file: the mp4 is written to and decoded from memory (ours, 0.5.2: the
    codec-made flicker negatives of the temporal training cubes). ``threads=1`` (default) pins the encoder to
    one thread, so the frames do not depend on the machine's core count."""
    import io

    import av

    from sstam.video_io import rgb_to_yuv420p

    buffer = io.BytesIO()
    options = _encoder_options(codec, crf, qp, preset, None, threads)
    _mux(buffer, rgb_to_yuv420p(frames_rgb), codec, fps, options, timestamps=True)
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(frames)


def ladder_specs(
    codecs: Sequence[str], crfs: Sequence[int], qps: Sequence[int]
) -> list[tuple[str, str, int]]:
    """(codec, "crf"|"qp", value): x264 uses CRF, x265 QP (spec §3a)."""
    specs = []
    for codec in codecs:
        if codec == "x264":
            specs += [("x264", "crf", int(v)) for v in crfs]
        elif codec == "x265":
            specs += [("x265", "qp", int(v)) for v in qps]
        else:
            raise ConfigError(f"unknown codec {codec!r} (expected x264 or x265)")
    return specs


def encode_ladder(
    planes: Sequence[np.ndarray],
    out: str | os.PathLike[str],
    content: str,
    fps: float = 25.0,
    codecs: Sequence[str] = ("x264", "x265"),
    crfs: Sequence[int] = (28, 35, 42, 51),
    qps: Sequence[int] = (32, 37, 42, 51),
    metrics: Sequence[str] = ("vmaf", "psnr", "ssim"),
    preset: str = "medium",
) -> list[dict[str, Any]]:
    """Reference ``<content>_ref.y4m`` plus one mp4 per ladder step and its full-reference metrics."""
    from sstam.fr_metrics import full_reference
    from sstam.video_io import write_y4m_planes

    out = Path(out)
    height, width = planes[0].shape[0] * 2 // 3, planes[0].shape[1]
    reference = write_y4m_planes(out / f"{content}_ref.y4m", list(planes), width, height, fps)
    rows = []
    for codec, kind, value in ladder_specs(codecs, crfs, qps):
        name = f"{content}_{codec}_{kind}{value}.mp4"
        encode(planes, out / name, codec, fps, **{kind: value}, preset=preset)
        row: dict[str, Any] = {
            "filename": name,
            "content": content,
            "codec": codec,
            "param": value,
            "bytes": (out / name).stat().st_size,
        }
        if metrics:
            fr = full_reference(reference, out / name, tuple(metrics))
            row.update({m: fr.get(m) for m in ("vmaf", "psnr", "ssim")})
        rows.append(row)
    return rows


def write_ladder_csv(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> Path:
    """``ladder.csv`` (filename, content, codec, param, bytes, vmaf, psnr, ssim) plus ``mos`` = vmaf, so the file
    is also a MOS CSV for ``fit-fusion``."""
    from paperlab_core.logging import atomic_open

    with atomic_open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*LADDER_FIELDS, "mos"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**{k: row.get(k) for k in LADDER_FIELDS}, "mos": row.get("vmaf")})
    return Path(path)


def psnr_stats(per_frame: Sequence[float]) -> dict[str, float]:
    """Mean, std, mean |ΔPSNR| and max |ΔPSNR| between consecutive frames (the flicker ground-truth proxy)."""
    values = np.asarray(per_frame, np.float64)
    delta = np.abs(np.diff(values)) if len(values) > 1 else np.zeros(1)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "mean_abs_delta": float(delta.mean()),
        "max_abs_delta": float(delta.max()),
    }


def pumping_pair(
    planes: Sequence[np.ndarray],
    out: str | os.PathLike[str],
    content: str,
    fps: float = 25.0,
    crf: int = 38,
    tolerance_db: float = 0.5,
) -> dict[str, Any]:
    """x264 CRF 38 with ``keyint=8:min-keyint=8:scenecut=0:ipratio=4.0:bframes=0`` (I-frame pumping) and a
    default-GOP control at the CRF whose mean PSNR-Y matches within ``tolerance_db`` (searched over CRF)."""
    from sstam.fr_metrics import full_reference
    from sstam.video_io import write_y4m_planes

    out = Path(out)
    height, width = planes[0].shape[0] * 2 // 3, planes[0].shape[1]
    reference = write_y4m_planes(out / f"{content}_ref.y4m", list(planes), width, height, fps)
    pumped = encode(
        planes, out / f"{content}_pumped_crf{crf}.mp4", "x264", fps, crf=crf, params=PUMPING_PARAMS
    )
    pumped_psnr = full_reference(reference, pumped, ("psnr",))["per_frame"]["psnr"]
    target = float(np.mean(pumped_psnr))
    tried: dict[int, tuple[float, list[float]]] = {}

    def control_psnr(value: int) -> float:
        if value not in tried:
            path = encode(planes, out / f"{content}_control_crf{value}.mp4", "x264", fps, crf=value)
            frames = full_reference(reference, path, ("psnr",))["per_frame"]["psnr"]
            tried[value] = (float(np.mean(frames)), frames)
        return tried[value][0]

    lo, hi = 10, 51  # PSNR falls with CRF
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if control_psnr(mid) > target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda v: abs(control_psnr(v) - target))
    for value in list(tried):
        if value != best:
            (out / f"{content}_control_crf{value}.mp4").unlink(missing_ok=True)
    control = out / f"{content}_control_crf{best}.mp4"
    gap = abs(tried[best][0] - target)
    if gap > tolerance_db:
        raise UserError(
            f"{content}: no control CRF matches the pumped clip's mean PSNR within {tolerance_db} dB "
            f"(closest: CRF {best}, {gap:.2f} dB)"
        )
    return {
        "pumped": str(pumped),
        "control": str(control),
        "control_crf": best,
        "reference": str(reference),
        "pumped_psnr": psnr_stats(pumped_psnr),
        "control_psnr": psnr_stats(tried[best][1]),
    }
