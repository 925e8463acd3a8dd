"""Low-cost saliency (spec §2.3, proposed): spectral residual + frame difference + centre bias.

``S_t = norm(a·norm(S_static) + b·norm(S_motion)) ⊙ G_centre``, then ``norm`` again; ``norm`` is a per-frame
min-max to [0, 1] and a flat map (max − min < 1e-6) becomes all ones. Frame 0 has no motion map (a = 1, b = 0).

Spectral residual (Hou & Zhang, CVPR 2007): ``A = log|F|``, ``Φ = arg F``, ``R = A − h_3 * A``,
``S = g_σ * |F⁻¹[exp(R + iΦ)]|²``. Backends: ``opencv`` (``cv2.saliency``, contrib wheels only), ``numpy`` (ours,
core ``cv2`` ops + ``numpy.fft``) and ``torch`` (``torch.fft``, for GPUs). ``opencv_compat=True`` makes ``numpy``
and ``torch`` follow OpenCV's implementation (64×64 internal size, BGR/grey weights, ``log(|F| + 1)``, 3×3 box blur with
reflected borders, 5×5 Gaussian σ = 8 on the magnitude *before* squaring, division by the max); ``False`` is the paper
formula (shorter side 64 px with the aspect kept, circular box filter, Gaussian σ = 8 after squaring, min-max).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLAT_EPS = 1e-6
SR_SIZE = 64
STATIC_MODELS = ("spectral", "fine_grained", "none")
MOTION_MODELS = ("diff", "farneback", "none")
BACKENDS = ("auto", "opencv", "numpy", "torch")


def has_cv2_saliency() -> bool:
    return hasattr(cv2, "saliency")


def minmax_norm(x: np.ndarray, axes: tuple[int, ...] = (-2, -1)) -> np.ndarray:
    """Per-map min-max to [0, 1]; a flat map (max − min < 1e-6) becomes all ones (the flat-map rule)."""
    x = np.asarray(x, dtype=np.float32)
    lo = x.min(axis=axes, keepdims=True)
    span = x.max(axis=axes, keepdims=True) - lo
    flat = span < FLAT_EPS
    out = (x - lo) / np.where(flat, 1.0, span)
    return np.where(flat, np.float32(1.0), out).astype(np.float32)


def to_gray(frame_rgb: np.ndarray) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]`` → grey ``uint8 [H, W]`` (OpenCV's 0.299/0.587/0.114 weights)."""
    if frame_rgb.ndim == 2:
        return frame_rgb
    return cv2.cvtColor(np.ascontiguousarray(frame_rgb), cv2.COLOR_RGB2GRAY)


# --------------------------------------------------------------------------------------------- spectral residual
def spectral_residual(image: np.ndarray, backend: str = "numpy", opencv_compat: bool = True) -> np.ndarray:
    """Spectral-residual saliency of an RGB or grey ``uint8`` image, ``float32 [H, W]`` in [0, 1]."""
    gray = to_gray(image)
    if backend == "auto":
        backend = "opencv" if has_cv2_saliency() and opencv_compat else "numpy"
    if backend == "opencv":
        if not opencv_compat:
            raise ValueError("backend 'opencv' implements only the opencv_compat flavour")
        model = cv2.saliency.StaticSaliencySpectralResidual_create()
        ok, out = model.computeSaliency(gray)
        if not ok:  # pragma: no cover - OpenCV reports failure only for empty input
            raise RuntimeError("cv2.saliency spectral residual failed")
        return np.asarray(out, dtype=np.float32)
    if backend == "torch":
        import torch

        return spectral_residual_torch(torch.from_numpy(gray), opencv_compat).cpu().numpy()
    if backend != "numpy":
        raise ValueError(
            f"unknown spectral residual backend {backend!r} (expected one of {', '.join(BACKENDS)})"
        )
    return _sr_numpy_compat(gray) if opencv_compat else _sr_numpy_paper(gray)


def _sr_numpy_compat(gray: np.ndarray) -> np.ndarray:
    """OpenCV's ``StaticSaliencySpectralResidual`` step by step (read from opencv_contrib; not copied)."""
    small = cv2.resize(gray, (SR_SIZE, SR_SIZE), interpolation=cv2.INTER_LINEAR_EXACT).astype(np.float64)
    spectrum = np.fft.fft2(small)
    log_amp = np.log1p(np.abs(spectrum))
    residual = log_amp - cv2.blur(log_amp, (3, 3), borderType=cv2.BORDER_DEFAULT)
    back = np.fft.ifft2(np.exp(residual) * np.exp(1j * np.angle(spectrum)))
    magnitude = cv2.GaussianBlur(np.abs(back), (5, 5), 8, borderType=cv2.BORDER_DEFAULT)
    magnitude = magnitude * magnitude
    peak = magnitude.max()
    magnitude = (magnitude / peak if peak > 0 else np.ones_like(magnitude)).astype(np.float32)
    return cv2.resize(magnitude, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR_EXACT)


def _box3_wrap(x: np.ndarray) -> np.ndarray:
    """3×3 mean with circular borders (the spectrum is periodic)."""
    acc = np.zeros_like(x)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            acc += np.roll(x, (dy, dx), axis=(0, 1))
    return acc / 9.0


def _sr_numpy_paper(gray: np.ndarray) -> np.ndarray:
    """Hou & Zhang's formula: shorter side 64 px (aspect kept), σ = 8 Gaussian after squaring, min-max."""
    h, w = gray.shape
    scale = SR_SIZE / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    spectrum = np.fft.fft2(small)
    log_amp = np.log(np.maximum(np.abs(spectrum), 1e-300))
    residual = log_amp - _box3_wrap(log_amp)
    back = np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))
    energy = np.abs(back) ** 2
    smooth = cv2.GaussianBlur(energy, (0, 0), 8, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(minmax_norm(smooth), (w, h), interpolation=cv2.INTER_LINEAR)


def _gauss_kernel_1d(size: int, sigma: float, dtype, device):
    import torch

    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def spectral_residual_torch(gray: torch.Tensor, opencv_compat: bool = True) -> torch.Tensor:  # noqa: F821
    """Spectral residual of grey images ``[..., H, W]`` (any dtype, any device) → float32 ``[..., H, W]``.

    Follows the OpenCV flavour (``opencv_compat=True``) or the paper flavour; runs where ``gray`` lives.
    """
    import torch
    import torch.nn.functional as F

    x = gray.to(torch.float64)
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    x = x.reshape(-1, 1, h, w)
    if opencv_compat:
        small = F.interpolate(x, size=(SR_SIZE, SR_SIZE), mode="bilinear", align_corners=False)
        small = small.round()  # OpenCV resizes the uint8 grey image to uint8
    else:
        scale = SR_SIZE / min(h, w)
        small = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
    spectrum = torch.fft.fft2(small)
    log_amp = torch.log1p(spectrum.abs()) if opencv_compat else torch.log(spectrum.abs().clamp_min(1e-300))
    if opencv_compat:
        blurred = F.avg_pool2d(F.pad(log_amp, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    else:
        blurred = F.avg_pool2d(F.pad(log_amp, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    residual = log_amp - blurred
    back = torch.fft.ifft2(torch.polar(torch.exp(residual), torch.angle(spectrum)))
    if opencv_compat:
        k = _gauss_kernel_1d(5, 8.0, back.real.dtype, back.device)
        mag = back.abs()
        mag = F.pad(mag, (2, 2, 2, 2), mode="reflect")
        mag = F.conv2d(F.conv2d(mag, k.view(1, 1, 1, 5)), k.view(1, 1, 5, 1))
        energy = mag * mag
        peak = energy.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
        out = energy / peak
    else:
        energy = back.abs() ** 2
        size = int(2 * round(8.0 * 4) + 1)
        size = min(size, 2 * min(energy.shape[-2:]) - 1) | 1
        k = _gauss_kernel_1d(size, 8.0, energy.dtype, energy.device)
        pad = size // 2
        sm = F.pad(energy, (pad, pad, pad, pad), mode="reflect")
        sm = F.conv2d(F.conv2d(sm, k.view(1, 1, 1, size)), k.view(1, 1, size, 1))
        lo = sm.amin(dim=(-2, -1), keepdim=True)
        span = sm.amax(dim=(-2, -1), keepdim=True) - lo
        out = torch.where(span < FLAT_EPS, torch.ones_like(sm), (sm - lo) / span.clamp_min(FLAT_EPS))
    out = F.interpolate(out.float(), size=(h, w), mode="bilinear", align_corners=False)
    return out.reshape(*lead, h, w)


def fine_grained(image: np.ndarray) -> np.ndarray:
    """OpenCV ``StaticSaliencyFineGrained`` (contrib), ``float32`` in [0, 1]."""
    model = cv2.saliency.StaticSaliencyFineGrained_create()
    _, out = model.computeSaliency(to_gray(image))
    return minmax_norm(np.asarray(out, dtype=np.float32))


# --------------------------------------------------------------------------------------------- motion, centre bias
def motion_saliency(prev_gray: np.ndarray, gray: np.ndarray, sigma: float, model: str = "diff") -> np.ndarray:
    """``|Y_t − Y_{t−1}|`` Gaussian-blurred (``diff``) or the Farnebäck flow magnitude (``farneback``)."""
    if model == "farneback":
        flow = cv2.calcOpticalFlowFarneback(prev_gray, gray, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        raw = np.sqrt((flow.astype(np.float32) ** 2).sum(-1))
    else:
        raw = cv2.absdiff(gray, prev_gray).astype(np.float32)
    return cv2.GaussianBlur(raw, (0, 0), sigma)


def centre_bias(height: int, width: int, sigma_x: float = 0.25, sigma_y: float = 0.25) -> np.ndarray:
    """Anisotropic Gaussian centred on the frame: ``exp(−(x−cx)²/2σx² − (y−cy)²/2σy²)``, σx = 0.25·W, σy = 0.25·H."""
    ys = np.arange(height, dtype=np.float64) - (height - 1) / 2
    xs = np.arange(width, dtype=np.float64) - (width - 1) / 2
    gy = np.exp(-(ys**2) / (2 * (sigma_y * height) ** 2))
    gx = np.exp(-(xs**2) / (2 * (sigma_x * width) ** 2))
    return np.outer(gy, gx).astype(np.float32)


def combine_saliency(
    static: np.ndarray | None,
    motion: np.ndarray | None,
    centre: np.ndarray | None,
    a: float = 0.5,
    b: float = 0.5,
) -> np.ndarray:
    """``norm(a·norm(static) + b·norm(motion)) ⊙ centre`` → ``norm`` (spec §2.3); ``None`` parts drop out
    (no motion: a = 1, b = 0). Works on one map ``[H, W]`` or a stack ``[T, H, W]``."""
    parts = []
    if static is not None:
        parts.append((a if motion is not None else 1.0) * minmax_norm(static))
    if motion is not None:
        parts.append((b if static is not None else 1.0) * minmax_norm(motion))
    if not parts:
        base = np.ones_like(centre) if centre is not None else None
        if base is None:
            raise ValueError("combine_saliency needs at least one map")
        mixed = base
    else:
        mixed = minmax_norm(sum(parts))
    if centre is not None:
        mixed = mixed * centre
    return minmax_norm(mixed)


# --------------------------------------------------------------------------------------------- the model
@dataclass
class SaliencyConfig:
    """Config fields of the saliency model (``saliency.*`` in the YAML presets)."""

    static: str = "spectral"  # spectral | fine_grained | none
    motion: str = "diff"  # diff | farneback | none
    centre_bias: bool = True
    a: float = 0.5
    b: float = 0.5
    backend: str = "auto"  # auto | opencv | numpy | torch
    opencv_compat: bool = True
    motion_sigma: float = 0.02  # Gaussian σ of the motion map as a fraction of max(H, W)
    work_size: int = 256  # motion is computed with the longer side at most this many pixels
    enabled: bool = True  # False: S ≡ 1 (the un-weighted ablation, ``saliency: none``)


class SaliencyModel:
    """Streams frames and returns ``S_t ∈ [0, 1]^{H×W}``; keeps the previous frame for the motion map."""

    def __init__(self, config: SaliencyConfig | None = None) -> None:
        self.config = config or SaliencyConfig()
        c = self.config
        if c.static not in STATIC_MODELS:
            raise ValueError(f"saliency.static must be one of {', '.join(STATIC_MODELS)}, got {c.static!r}")
        if c.motion not in MOTION_MODELS:
            raise ValueError(f"saliency.motion must be one of {', '.join(MOTION_MODELS)}, got {c.motion!r}")
        if c.backend not in BACKENDS:
            raise ValueError(f"saliency.backend must be one of {', '.join(BACKENDS)}, got {c.backend!r}")
        self.prev: np.ndarray | None = None
        self._centre: dict[tuple[int, int], np.ndarray] = {}

    def reset(self) -> None:
        self.prev = None

    def _centre_map(self, h: int, w: int) -> np.ndarray:
        if (h, w) not in self._centre:
            self._centre[(h, w)] = centre_bias(h, w)
        return self._centre[(h, w)]

    def frame(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Saliency of the next frame of the stream, ``float32 [H, W]``."""
        c = self.config
        h, w = frame_rgb.shape[:2]
        if not c.enabled:
            return np.ones((h, w), np.float32)
        gray = to_gray(frame_rgb)
        scale = min(1.0, c.work_size / max(h, w))
        small = (
            gray
            if scale == 1.0
            else cv2.resize(
                gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
            )
        )
        sh, sw = small.shape
        static = None
        if c.static != "none" and int(small.max()) == int(small.min()):
            static = np.ones(small.shape, np.float32)  # a flat frame has no salient structure
        elif c.static == "spectral":
            static = spectral_residual(small, c.backend, c.opencv_compat)
        elif c.static == "fine_grained":
            static = fine_grained(small)
        motion = None
        if c.motion != "none" and self.prev is not None and self.prev.shape == small.shape:
            motion = motion_saliency(self.prev, small, max(0.5, c.motion_sigma * max(sh, sw)), c.motion)
        self.prev = small
        centre = self._centre_map(sh, sw) if c.centre_bias else None
        if static is None and motion is None and centre is None:
            out = np.ones((sh, sw), np.float32)
        else:
            out = combine_saliency(static, motion, centre, c.a, c.b)
        if (sh, sw) != (h, w):
            out = np.clip(cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
        return out

    def frames(self, frames_rgb: np.ndarray) -> np.ndarray:
        """Saliency of consecutive frames ``[T, H, W, 3]`` → ``float32 [T, H, W]`` (continues the stream)."""
        return (
            np.stack([self.frame(f) for f in frames_rgb]) if len(frames_rgb) else np.zeros((0,), np.float32)
        )
