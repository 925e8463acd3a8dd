"""Saved artifacts of a distillation run (spec §2.12): the distilled set and the trigger, as ``.pt`` and ``.png``.

Every write is atomic (``paperlab_core.logging``); every read validates the file and fails with one line that names
the file and the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlab_core.errors import UserError
from paperlab_core.logging import atomic_open, save_torch_atomic

DISTILLED_KEYS = ("images", "labels", "mean", "std", "dataset", "method", "attack")
TRIGGER_KEYS = ("trigger", "mask", "target_label", "kind", "bound", "mean", "std")


def save_png(path: Path, image: np.ndarray) -> None:
    """H×W(×C) float in [0, 1] → PNG, atomically."""
    from PIL import Image

    pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    with atomic_open(path, "wb") as handle:
        Image.fromarray(pixels).save(handle, format="PNG")


def denormalise(x: torch.Tensor, mean: Any, std: Any) -> torch.Tensor:
    m = torch.as_tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return x * s + m


def grid(images: torch.Tensor, nrow: int, pad: int = 1) -> np.ndarray:
    """N×C×H×W in [0, 1] → one H'×W'×C image with ``nrow`` images per row (torchvision's ``make_grid``)."""
    from torchvision.utils import make_grid

    return make_grid(images.clamp(0, 1), nrow=nrow, padding=pad, pad_value=1.0).permute(1, 2, 0).numpy()


def save_distilled(folder: Path, record: dict[str, Any], nrow: int) -> None:
    """``distilled.pt`` and ``distilled.png`` (denormalised, clipped, ``nrow`` = ipc images per row)."""
    save_torch_atomic(record, folder / "distilled.pt")
    pixels = denormalise(record["images"].float().cpu(), record["mean"], record["std"])
    save_png(folder / "distilled.png", grid(pixels, nrow))


def save_trigger(folder: Path, record: dict[str, Any], name: str = "trigger") -> None:
    """``trigger.pt``, ``trigger.png`` (clipped) and ``trigger_scaled.png`` (min–max scaled over the mask)."""
    save_torch_atomic(record, folder / f"{name}.pt")
    trigger = record["trigger"].float().cpu()
    mask = record["paste_mask"].float().cpu() if "paste_mask" in record else record["mask"].float().cpu()
    pixels = denormalise(trigger, record["mean"], record["std"])[0].permute(1, 2, 0).numpy()
    save_png(folder / f"{name}.png", pixels)
    m = mask[0].permute(1, 2, 0).numpy() > 0
    scaled = np.zeros_like(pixels)
    values = trigger[0].permute(1, 2, 0).numpy()
    if m.any():
        lo, hi = values[m].min(), values[m].max()
        scaled = np.where(m, (values - lo) / (hi - lo) if hi > lo else 1.0, 0.0)
    save_png(folder / f"{name}_scaled.png", scaled)


def _load(path: str | os.PathLike[str], keys: tuple[str, ...], what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} file {path} does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"{path}: cannot be read as a {what} file ({type(err).__name__})") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: expected a {what} dictionary, got {type(record).__name__}")
    missing = [k for k in keys if k not in record]
    if missing:
        raise UserError(f"{path}: {what} file lacks field(s) {', '.join(missing)}")
    return record


def load_distilled(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``distilled.pt`` with ``images`` N×C×H×W float and ``labels`` N int (checked)."""
    record = _load(path, DISTILLED_KEYS, "distilled-set")
    images, labels = record["images"], record["labels"]
    if not (isinstance(images, torch.Tensor) and images.dim() == 4 and images.is_floating_point()):
        raise UserError(f"{path}: field images must be a float N×C×H×W tensor")
    if not (isinstance(labels, torch.Tensor) and labels.dim() == 1 and len(labels) == len(images)):
        raise UserError(f"{path}: field labels must be a 1-D tensor with one label per image")
    if not torch.isfinite(images).all():
        raise UserError(f"{path}: field images holds non-finite values")
    return record


def load_trigger(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``trigger.pt`` with ``trigger`` and ``mask`` 1×C×H×W (checked)."""
    record = _load(path, TRIGGER_KEYS, "trigger")
    trigger, mask = record["trigger"], record["mask"]
    if not (isinstance(trigger, torch.Tensor) and trigger.dim() == 4 and trigger.shape[0] == 1):
        raise UserError(f"{path}: field trigger must be a 1×C×H×W tensor")
    if not (isinstance(mask, torch.Tensor) and mask.shape == trigger.shape):
        raise UserError(f"{path}: field mask must have the trigger's shape {tuple(trigger.shape)}")
    if record["kind"] not in ("patch", "additive"):
        raise UserError(f"{path}: field kind must be patch or additive, got {record['kind']!r}")
    return record
