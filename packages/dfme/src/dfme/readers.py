"""Frame readers for the on-disk layouts of spec §2.2: frame folders (jpg/png/bmp, index = trailing integer of
the file name), one ``.npy`` array per sample, videos (PyAV, OpenCV as fallback) and raw planar I420 ``.yuv``.

A reader is a callable ``read(positions) -> (k, H, W, 3) uint8 RGB`` over 0-based positions in the clip, with
``n_frames`` and ``first_index`` (the file-name integer of position 0; annotations refer to file-name integers).
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from paperlab_core.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
_TRAILING_INT = re.compile(r"(\d+)(?!.*\d)")


class FrameError(UserError):
    """A frame or video that cannot be read."""


def trailing_int(name: str) -> int | None:
    """The last integer in a file name (``img46.jpg`` → 46, ``reg_img046.jpg`` → 46, ``006_05562.jpg`` → 5562)."""
    match = _TRAILING_INT.search(Path(name).stem)
    return int(match.group(1)) if match else None


def _rgb(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.repeat(frame[..., None], 3, axis=2)
    return frame[..., :3]


class FolderReader:
    """Frames stored as image files in one folder."""

    def __init__(self, folder: str | Path, sample_id: str = "") -> None:
        self.folder = Path(folder)
        self.sample_id = sample_id or self.folder.name
        files = [p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise FrameError(
                f"sample {self.sample_id!r}: no frame images in {self.folder} (expected {', '.join(IMAGE_SUFFIXES)})"
            )
        numbered = []
        for path in files:
            index = trailing_int(path.name)
            if index is None:
                raise FrameError(
                    f"sample {self.sample_id!r}: frame file {path} has no frame number in its name"
                )
            numbered.append((index, path))
        numbered.sort()
        indices = np.array([i for i, _ in numbered])
        if len(np.unique(indices)) != len(indices):
            dup = indices[np.nonzero(np.diff(indices) == 0)[0][0]]
            raise FrameError(
                f"sample {self.sample_id!r}: two frame files in {self.folder} carry number {dup}"
            )
        gaps = np.nonzero(np.diff(indices) != 1)[0]
        if len(gaps):
            raise FrameError(
                f"sample {self.sample_id!r}: frames in {self.folder} are not contiguous (frame {indices[gaps[0]]} "
                f"is followed by {indices[gaps[0] + 1]})"
            )
        self.paths = [p for _, p in numbered]
        self.first_index = int(indices[0])
        self.n_frames = len(self.paths)

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        out = []
        for position in np.asarray(positions, np.int64):
            path = self.paths[int(position)]
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                raise FrameError(f"sample {self.sample_id!r}: frame {path} cannot be decoded")
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        return np.stack(out)


class NpyReader:
    """One uint8 array (T, H, W, 3) or (T, H, W) per sample, memory-mapped."""

    first_index = 0

    def __init__(self, path: str | Path, sample_id: str = "") -> None:
        self.path = Path(path)
        self.sample_id = sample_id or self.path.stem
        try:
            self.array = np.load(self.path, mmap_mode="r")
        except (ValueError, OSError) as err:
            raise FrameError(
                f"sample {self.sample_id!r}: {self.path} is not a readable .npy array ({err})"
            ) from None
        if (
            self.array.dtype != np.uint8
            or self.array.ndim not in (3, 4)
            or (self.array.ndim == 4 and self.array.shape[3] not in (1, 3))
        ):
            raise FrameError(
                f"sample {self.sample_id!r}: {self.path} holds {self.array.dtype} {self.array.shape} "
                "(expected uint8 (T, H, W, 3) or (T, H, W))"
            )
        self.n_frames = int(self.array.shape[0])

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, np.int64)
        if len(positions) > 1 and np.all(np.diff(positions) == 1):  # one contiguous read from the memory map
            frames = np.array(self.array[positions[0] : positions[-1] + 1])
        else:
            frames = np.array(self.array[positions])
        if frames.ndim == 3:
            return np.repeat(frames[..., None], 3, axis=3)
        return frames if frames.shape[3] == 3 else np.repeat(frames, 3, axis=3)

    def read_window(self, positions: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
        """Frames at ``positions`` cropped to rows ``y0:y1`` and columns ``x0:x1`` (``window = (y0, y1, x0, x1)``),
        copied straight out of the memory map (only the window's bytes are touched)."""
        y0, y1, x0, x1 = window
        positions = np.asarray(positions, np.int64)
        if len(positions) > 1 and np.all(np.diff(positions) == 1):
            frames = np.array(self.array[positions[0] : positions[-1] + 1, y0:y1, x0:x1])
        else:
            frames = np.array(self.array[positions, y0:y1, x0:x1])
        if frames.ndim == 3:
            return np.repeat(frames[..., None], 3, axis=3)
        return frames if frames.shape[3] == 3 else np.repeat(frames, 3, axis=3)


class VideoReader:
    """A video file, decoded whole on first use (PyAV; OpenCV's VideoCapture when PyAV is missing)."""

    first_index = 0

    def __init__(self, path: str | Path, sample_id: str = "") -> None:
        self.path = Path(path)
        self.sample_id = sample_id or self.path.stem
        self._frames: np.ndarray | None = None

    def _decode(self) -> np.ndarray:
        if self._frames is None:
            try:
                frames = _decode_pyav(self.path)
            except ImportError:
                frames = _decode_opencv(self.path)
            except Exception as err:  # PyAV raises its own error types for corrupt files
                raise FrameError(
                    f"sample {self.sample_id!r}: video {self.path} cannot be decoded ({err})"
                ) from None
            if len(frames) == 0:
                raise FrameError(f"sample {self.sample_id!r}: video {self.path} holds no frame")
            self._frames = frames
        return self._frames

    @property
    def n_frames(self) -> int:
        return len(self._decode())

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        return self._decode()[np.asarray(positions, np.int64)]


def _decode_pyav(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _decode_opencv(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames) if frames else np.zeros((0, 1, 1, 3), np.uint8)


def read_yuv420(path: str | Path, width: int, height: int) -> np.ndarray:
    """Raw planar I420 (Y plane, then U and V at half resolution) → (T, H, W, 3) uint8 RGB."""
    raw = np.fromfile(path, dtype=np.uint8)
    frame_bytes = width * height * 3 // 2
    if len(raw) % frame_bytes:
        raise FrameError(f"{path}: {len(raw)} bytes is not a whole number of {width}×{height} I420 frames")
    frames = raw.reshape(-1, height * 3 // 2, width)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_YUV2RGB_I420) for f in frames])


def write_frames(frames: np.ndarray, folder: Path, suffix: str = ".jpg", quality: int = 95) -> None:
    """Write (T, H, W, 3) RGB frames as ``000000.jpg`` … (frame number = position)."""
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix == ".jpg" else []
    for index, frame in enumerate(frames):
        if not cv2.imwrite(
            str(folder / f"{index:06d}{suffix}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params
        ):
            raise FrameError(f"cannot write {folder / f'{index:06d}{suffix}'}")


def write_video(frames: np.ndarray, path: Path, fps: int = 25, crf: int = 10) -> None:
    """Write (T, H, W, 3) RGB frames as H.264 (PyAV, ``libx264``, near-lossless CRF)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv444p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
