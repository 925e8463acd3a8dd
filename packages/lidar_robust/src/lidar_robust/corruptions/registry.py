"""The two corruption registries: SemanticKITTI-C (Yan et al., 16 subsets, spec §2.4) and Robo3D (8 × 3, §2.7).

Each entry is ``Subset(name, corruption, level, function, params)``; :func:`apply` runs one on a clean scan with
the per-scan seed ``SeedSequence([seed, registry, subset, sequence, frame])`` (independent of worker counts).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lidar_robust.corruptions import basic, fog, robo3d, snow
from lidar_robust.formats import Scan

REGISTRIES = ("semantickitti_c", "robo3d")
LEVELS = ("light", "moderate", "heavy")


@dataclass(frozen=True)
class Subset:
    name: str  # folder name (SemanticKITTI-C) or "<corruption>/<level>" (Robo3D)
    corruption: str
    level: str
    function: Callable[..., tuple[Scan, dict]]
    params: dict[str, Any] = field(default_factory=dict)
    created_label: int = 0  # raw label of created/replaced points


def _skc() -> dict[str, Subset]:
    out = [
        Subset("fog_light", "fog", "light", fog.fog, {"value": 0.005, "knob": "beta"}),
        Subset("fog_moderate", "fog", "moderate", fog.fog, {"value": 0.06, "knob": "beta"}),
        Subset("fog_heavy", "fog", "heavy", fog.fog, {"value": 0.2, "knob": "beta"}),
        Subset("snowfall_light", "snow", "light", snow.snowfall, {"rate": 0.5, "terminal_velocity": 2.0}),
        Subset(
            "snowfall_moderate", "snow", "moderate", snow.snowfall, {"rate": 1.5, "terminal_velocity": 1.6}
        ),
        Subset("snowfall_heavy", "snow", "heavy", snow.snowfall, {"rate": 2.5, "terminal_velocity": 1.6}),
        Subset("global_light", "global", "light", basic.global_outliers, {"ratio": 0.001}),
        Subset("global_moderate", "global", "moderate", basic.global_outliers, {"ratio": 0.05}),
        Subset("global_heavy", "global", "heavy", basic.global_outliers, {"ratio": 0.5}),
        Subset("local_light", "local", "light", basic.local_distortion, {"sigma": 0.05}),
        Subset("local_moderate", "local", "moderate", basic.local_distortion, {"sigma": 0.1}),
        Subset("local_heavy", "local", "heavy", basic.local_distortion, {"sigma": 0.2}),
        Subset("dense_32beam", "32beam", "dense", basic.beam_reduction, {"keep_every": 2}),
        Subset("sparse_32beam", "32beam", "sparse", basic.beam_reduction, {"keep_every": 2, "sparse": True}),
        Subset("dense_16beam", "16beam", "dense", basic.beam_reduction, {"keep_every": 4}),
        Subset("sparse_16beam", "16beam", "sparse", basic.beam_reduction, {"keep_every": 4, "sparse": True}),
    ]
    return {s.name: s for s in out}


SEMANTICKITTI_C: dict[str, Subset] = _skc()


def _robo3d() -> dict[str, Subset]:
    out = []
    for level, beta in zip(LEVELS, (0.008, 0.05, 0.2), strict=True):
        out.append(Subset(f"fog/{level}", "fog", level, fog.fog, {"value": beta, "knob": "beta", "created_label": 21},
                          created_label=21))  # fmt: skip
    table = {
        "wet_ground": (robo3d.wet_ground, [{"water_height": 0.2, "noise_floor": 0.3},
                                           {"water_height": 1.0, "noise_floor": 0.3},
                                           {"water_height": 1.2, "noise_floor": 0.7}]),
        "snow": (snow.snowfall, [{"rate": 0.5, "terminal_velocity": 2.0, "created_label": 22},
                                 {"rate": 1.0, "terminal_velocity": 1.6, "created_label": 22},
                                 {"rate": 2.5, "terminal_velocity": 1.6, "created_label": 22}]),
        "motion_blur": (robo3d.motion_blur, [{"sigma": 0.2}, {"sigma": 0.25}, {"sigma": 0.3}]),
        "beam_missing": (robo3d.beam_missing, [{"beams": 16}, {"beams": 32}, {"beams": 48}]),
        "crosstalk": (robo3d.crosstalk, [{"ratio": 0.006}, {"ratio": 0.008}, {"ratio": 0.01}]),
        "incomplete_echo": (robo3d.incomplete_echo, [{"drop": 0.75}, {"drop": 0.85}, {"drop": 0.95}]),
        "cross_sensor": (robo3d.cross_sensor, [{"beams": 16}, {"beams": 32}, {"beams": 48}]),
    }  # fmt: skip
    for name, (function, levels) in table.items():
        for level, params in zip(LEVELS, levels, strict=True):
            label = {"snow": 22, "crosstalk": 23}.get(name, 0)
            out.append(Subset(f"{name}/{level}", name, level, function, params, created_label=label))
    return {s.name: s for s in out}


ROBO3D: dict[str, Subset] = _robo3d()


def registry(name: str) -> dict[str, Subset]:
    if name == "semantickitti_c":
        return SEMANTICKITTI_C
    if name == "robo3d":
        return ROBO3D
    raise ValueError(f"unknown registry {name!r} (expected one of {', '.join(REGISTRIES)})")


def scan_seed(
    seed: int, registry_name: str, subset: str, sequence: str, frame: int
) -> np.random.SeedSequence:
    words = [zlib.crc32(registry_name.encode()), zlib.crc32(subset.encode()), zlib.crc32(sequence.encode())]
    return np.random.SeedSequence([seed, *words, frame])


def apply(
    subset: Subset, scan: Scan, seed: np.random.SeedSequence | int, **overrides: Any
) -> tuple[Scan, dict]:
    """Run ``subset`` on ``scan`` with a fresh generator from ``seed``."""
    rng = np.random.default_rng(seed)
    return subset.function(scan, rng, **{**subset.params, **overrides})
