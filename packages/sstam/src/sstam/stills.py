"""Source stills bundled in wheels (spec §3a): scikit-image and scikit-learn sample images, nothing downloaded.

Content groups (proposed): train = coffee, chelsea, rocket, motorcycle (left and right are one content), brick,
grass, gravel, coins; held out = astronaut, camera, china, flower. Grey stills are returned as 3 equal channels.

``EXTRA_STILLS`` (ours, 0.5): the other images that ship inside the scikit-image wheel (astronomy, microscopy,
fundus, text, synthetic drawings), all different contents from the held-out four; the 0.5 bundle's temporal
stage trains on them too (``--data.temporal_stills``). Binary / float / RGBA images are converted to RGB
``uint8``; a side longer than 640 px is downscaled to 640 (INTER_AREA), so the per-frame motion of a pan stays
comparable to the other stills.
"""

from __future__ import annotations

from functools import cache

import numpy as np

TRAIN_STILLS = (
    "coffee",
    "chelsea",
    "rocket",
    "motorcycle_left",
    "motorcycle_right",
    "brick",
    "grass",
    "gravel",
    "coins",
)
HELDOUT_STILLS = ("astronaut", "camera", "china", "flower")
#: extra name -> ``skimage.data`` function (ours, 0.5); every one is a file of the scikit-image wheel
EXTRA_SOURCES = {
    "hubble": "hubble_deep_field",
    "retina": "retina",
    "ihc": "immunohistochemistry",
    "cell": "cell",
    "moon": "moon",
    "page": "page",
    "text": "text",
    "clock": "clock",
    "colorwheel": "colorwheel",
    "horse": "horse",
    "phantom": "shepp_logan_phantom",
    "logo": "logo",
    "checkerboard": "checkerboard",
}
EXTRA_STILLS = tuple(EXTRA_SOURCES)
GREY_STILLS = (
    "camera",
    "coins",
    "brick",
    "grass",
    "gravel",
    "cell",
    "moon",
    "page",
    "text",
    "clock",
    "horse",
    "phantom",
    "checkerboard",
)
TEXTURES = ("brick", "grass", "gravel")
ALL_STILLS = TRAIN_STILLS + HELDOUT_STILLS + EXTRA_STILLS
MAX_SIDE = 640


def content_of(name: str) -> str:
    """Content id of a still: the motorcycle stereo pair is one content."""
    return "motorcycle" if name.startswith("motorcycle") else name


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """bool / float in [0, 1] / uint8 grey, RGB or RGBA (composited on white) → RGB ``uint8``."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype.kind == "f":
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255.0
        image = np.rint(image[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image


@cache
def _load(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    elif name in EXTRA_SOURCES:
        from skimage import data

        image = _as_rgb_uint8(getattr(data, EXTRA_SOURCES[name])())
        if max(image.shape[:2]) > MAX_SIDE:
            import cv2

            scale = MAX_SIDE / max(image.shape[:2])
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    elif name.startswith("motorcycle"):
        from skimage import data

        left, right, _ = data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    else:
        from skimage import data

        if name not in ALL_STILLS:
            raise KeyError(name)
        image = getattr(data, name)()
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image.setflags(write=False)
    return image


def load_still(name: str) -> np.ndarray:
    """RGB ``uint8 [H, W, 3]`` (read-only, cached)."""
    if name not in ALL_STILLS:
        from paperlab_core.errors import ConfigError

        raise ConfigError(f"unknown still {name!r} (expected one of {', '.join(ALL_STILLS)})")
    return _load(name)


def is_grey(name: str) -> bool:
    return name in GREY_STILLS
