"""``reproduce --scale`` presets (pure Python, so the CLI can list them without importing torch or numpy).

``cpu`` is this package's CPU scale (the committed reduced-scale tables); ``spec`` is spec §5's CPU protocol,
MinkUNet-style cr 0.5 with 0.15 m voxels, whose step budget was frozen at 400 in session 11: the whole 3-seed run
(6 cells) then takes ≈ 1 h on 2 cores, inside the spec's ≤ 2 h (lab notebook, "Frozen budget").
"""

from __future__ import annotations

from typing import NamedTuple


class Scale(NamedTuple):
    """Backbone width, voxel size (m) and default training steps of one ``--scale``."""

    cr: float
    voxel_size: float
    steps: int


SCALES: dict[str, Scale] = {
    "cpu": Scale(cr=0.25, voxel_size=0.2, steps=200),
    "spec": Scale(cr=0.5, voxel_size=0.15, steps=400),
}
QUICK_STEPS = 30
