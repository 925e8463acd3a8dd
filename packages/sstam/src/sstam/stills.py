"""Source stills bundled in wheels (spec §3a): scikit-image and scikit-learn sample images, nothing downloaded.

Content groups (proposed): train = coffee, chelsea, rocket, motorcycle (left and right are one content), brick,
grass, gravel, coins; held out = astronaut, camera, china, flower. Grey stills are returned as 3 equal channels.
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
GREY_STILLS = ("camera", "coins", "brick", "grass", "gravel")
TEXTURES = ("brick", "grass", "gravel")
ALL_STILLS = TRAIN_STILLS + HELDOUT_STILLS


def content_of(name: str) -> str:
    """Content id of a still: the motorcycle stereo pair is one content."""
    return "motorcycle" if name.startswith("motorcycle") else name


@cache
def _load(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
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
