"""Video input (spec §2.2): every container through PyAV, raw planar YUV through the same YUV→RGB path.

Frames come out as RGB ``uint8 [H, W, 3]`` (``to_ndarray(format="rgb24")``; 10-bit input is reduced to 8 bits).
Raw ``.yuv`` planes are wrapped with ``VideoFrame.from_ndarray(..., format=pix_fmt)`` and converted with the same
``to_ndarray(format="rgb24")`` call as decoded frames, so identical YUV gives identical RGB whether it arrives as
``.yuv`` or ``.y4m``. Every problem a user can cause raises :class:`~sstam.errors.VideoInputError` (one line,
exit status 2).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from paperlab_core.logging import log
from sstam.errors import VideoInputError
from sstam.inputs import RAW_BPP, is_raw_yuv, raw_frame_bytes, size_from_name

MIN_FRAMES = 2


@dataclass
class VideoInfo:
    """What is known about a video before decoding it."""

    path: str
    container: str
    width: int
    height: int
    fps: float
    frames: int | None = None  # None when the container does not say
    pix_fmt: str = ""
    notices: list[str] = field(default_factory=list)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoInputError(f"video {path} does not exist")
    if path.is_dir():
        raise VideoInputError(f"video {path} is a folder (expected a video file)")
    if not os.access(path, os.R_OK):
        raise VideoInputError(f"video {path} is not readable (no read permission)")
    if path.stat().st_size == 0:
        raise VideoInputError(f"video {path} is empty (0 bytes; expected a video file)")


def _wrap_planes(buffer: bytes, width: int, height: int, pix_fmt: str) -> np.ndarray:
    """One raw planar frame → RGB through PyAV's converter (the container path's conversion)."""
    import av

    data = np.frombuffer(buffer, dtype=np.uint8)
    if pix_fmt == "yuv420p":
        array = data.reshape(height * 3 // 2, width)
    elif pix_fmt == "yuv444p":
        array = data.reshape(3, height, width)
    else:  # gray
        array = data.reshape(height, width)
    return av.VideoFrame.from_ndarray(array, format=pix_fmt).to_ndarray(format="rgb24")


class VideoSource:
    """An opened video: ``info`` at once, RGB frames by iteration (streamed, bounded memory)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        pix_fmt: str = "yuv420p",
        max_frames: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.max_frames = max_frames
        _check_file(self.path)
        self.raw = is_raw_yuv(self.path)
        self.info = self._probe_raw(size, fps, pix_fmt) if self.raw else self._probe_container()

    # ------------------------------------------------------------------ raw planar YUV
    def _probe_raw(self, size: tuple[int, int] | None, fps: float | None, pix_fmt: str) -> VideoInfo:
        if pix_fmt not in RAW_BPP:
            raise VideoInputError(
                f"unsupported raw pixel format {pix_fmt!r} for {self.path} (expected {', '.join(RAW_BPP)})"
            )
        notices = []
        if size is None:
            size, name_fps = size_from_name(self.path)
            if size is None:
                raise VideoInputError(
                    f"raw YUV {self.path} needs --size WxH (the file name holds no single <W>x<H> token)"
                )
            notices.append(f"size {size[0]}x{size[1]} taken from the file name")
            if fps is None and name_fps is not None:
                fps = name_fps
                notices.append(f"fps {name_fps:g} taken from the file name")
        width, height = size
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise VideoInputError(
                f"raw yuv420p {self.path}: width and height must be even, got {width}x{height}"
            )
        frame_bytes = raw_frame_bytes(width, height, pix_fmt)
        total = self.path.stat().st_size
        if total % frame_bytes:
            raise VideoInputError(
                f"raw YUV {self.path} has {total} bytes, not a whole number of {width}x{height} {pix_fmt} frames "
                f"({frame_bytes} bytes each: {total / frame_bytes:.3f} frames); check --size and --pix-fmt"
            )
        self.frame_bytes = frame_bytes
        self.pix_fmt = pix_fmt
        return VideoInfo(
            str(self.path),
            "rawvideo",
            width,
            height,
            float(fps or 25.0),
            total // frame_bytes,
            pix_fmt,
            notices,
        )

    def _raw_frames(self) -> Iterator[np.ndarray]:
        info = self.info
        with self.path.open("rb") as handle:
            for _ in range(info.frames or 0):
                buffer = handle.read(self.frame_bytes)
                if len(buffer) < self.frame_bytes:
                    break
                yield _wrap_planes(buffer, info.width, info.height, self.pix_fmt)

    # ------------------------------------------------------------------ containers
    def _open(self):
        import av

        try:
            return av.open(str(self.path), mode="r")
        except av.FFmpegError as err:
            raise VideoInputError(f"video {self.path} cannot be demuxed ({_av_message(err)})") from None
        except (OSError, ValueError) as err:
            raise VideoInputError(f"video {self.path} cannot be opened ({err})") from None

    def _probe_container(self) -> VideoInfo:
        container = self._open()
        try:
            if not container.streams.video:
                raise VideoInputError(f"video {self.path} holds no video stream ({container.format.name})")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 25.0
            frames = int(stream.frames) if stream.frames else None
            return VideoInfo(
                str(self.path),
                container.format.name,
                int(ctx.width),
                int(ctx.height),
                fps,
                frames,
                str(ctx.pix_fmt or ""),
            )
        finally:
            container.close()

    def _container_frames(self) -> Iterator[np.ndarray]:
        import av

        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            try:
                for frame in container.decode(stream):
                    try:
                        yield frame.to_ndarray(format="rgb24")
                    except (ValueError, av.FFmpegError) as err:
                        raise VideoInputError(
                            f"video {self.path}: pixel format {frame.format.name} cannot be converted to RGB "
                            f"({_av_message(err)})"
                        ) from None
            except av.FFmpegError as err:
                raise VideoInputError(f"video {self.path} cannot be decoded ({_av_message(err)})") from None
        finally:
            container.close()

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[np.ndarray]:
        frames = self._raw_frames() if self.raw else self._container_frames()
        count = 0
        for frame in frames:
            if self.max_frames is not None and count >= self.max_frames:
                break
            count += 1
            yield frame
        if count == 0:
            raise VideoInputError(f"video {self.path} has no decodable frames (an empty or broken file)")


def _av_message(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(str(text).split())


def open_video(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    pix_fmt: str = "yuv420p",
    max_frames: int | None = None,
) -> VideoSource:
    """Open ``path`` (checks the file, demuxes the header, finds the video stream); iterate for frames."""
    source = VideoSource(path, size, fps, pix_fmt, max_frames)
    for notice in source.info.notices:
        log(f"sstam: notice: {path}: {notice}")
    return source


def read_video(
    path: str | os.PathLike[str],
    size: tuple[int, int] | None = None,
    fps: float | None = None,
    pix_fmt: str = "yuv420p",
    max_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the RGB ``uint8 [H, W, 3]`` frames of ``path`` (spec §2.11 API)."""
    yield from open_video(path, size, fps, pix_fmt, max_frames)


def read_frames(path: str | os.PathLike[str], **kwargs) -> tuple[np.ndarray, VideoInfo]:
    """Every frame of ``path`` as one ``uint8 [T, H, W, 3]`` array, with its :class:`VideoInfo`."""
    source = open_video(path, **kwargs)
    frames = np.stack(list(source))
    return frames, source.info


def write_y4m(path: str | os.PathLike[str], frames_rgb: np.ndarray, fps: float = 25.0) -> Path:
    """RGB frames → a yuv420p ``.y4m`` (through PyAV's RGB→YUV converter; the raw reference of ladders)."""
    planes = rgb_to_yuv420p(frames_rgb)
    return write_y4m_planes(path, planes, frames_rgb.shape[2], frames_rgb.shape[1], fps)


def rgb_to_yuv420p(frames_rgb: np.ndarray) -> list[np.ndarray]:
    """RGB ``[T, H, W, 3]`` → yuv420p planes ``[H·3/2, W]`` per frame (swscale's default BT.601 limited range)."""
    import av

    return [
        av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
        .reformat(format="yuv420p")
        .to_ndarray()
        for f in frames_rgb
    ]


def write_y4m_planes(
    path: str | os.PathLike[str], planes: list[np.ndarray], width: int, height: int, fps: float
) -> Path:
    from fractions import Fraction

    from paperlab_core.logging import atomic_open

    rate = Fraction(fps).limit_denominator(1001)
    header = f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n"
    with atomic_open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        for plane in planes:
            handle.write(b"FRAME\n")
            handle.write(np.ascontiguousarray(plane, dtype=np.uint8).tobytes())
    return Path(path)


def write_raw_yuv(path: str | os.PathLike[str], planes: list[np.ndarray]) -> Path:
    from paperlab_core.logging import atomic_open

    with atomic_open(path, "wb") as handle:
        for plane in planes:
            handle.write(np.ascontiguousarray(plane, dtype=np.uint8).tobytes())
    return Path(path)
