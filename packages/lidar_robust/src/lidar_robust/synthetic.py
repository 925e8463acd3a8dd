"""Synthetic SemanticKITTI-format scenes (spec §2.3): an HDL-64E-like sensor ray-cast into a generated street.

The scene (ground with road/sidewalk/terrain, buildings and an enclosing wall, cars, trucks, poles with traffic
signs, trees, fences, persons) is built from analytic primitives; every ray keeps its nearest hit. Points are
written ring-major (ring 0 = highest beam, the KITTI convention) and, within a ring, in increasing azimuth from
just after +x counter-clockwise to 2π, so the file-order ring estimator of :mod:`lidar_robust.rings` recovers
the rings exactly. Everything is vectorised numpy and deterministic given the seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lidar_robust.formats import Scan, pack_labels, write_bin, write_label

#: raw SemanticKITTI ids used by the generator
RAW = {
    "car": 10, "truck": 18, "person": 30, "road": 40, "parking": 44, "sidewalk": 48, "building": 50,
    "fence": 51, "vegetation": 70, "trunk": 71, "terrain": 72, "pole": 80, "traffic-sign": 81,
}  # fmt: skip
#: per-class reflectivity (× |cos incidence| gives the remission)
REFLECTIVITY = {
    10: 0.45, 18: 0.5, 30: 0.35, 40: 0.3, 44: 0.35, 48: 0.4, 50: 0.6, 51: 0.5, 70: 0.75, 71: 0.55,
    72: 0.65, 80: 0.7, 81: 0.95,
}  # fmt: skip


@dataclass(frozen=True)
class SensorConfig:
    """HDL-64E-like sensor: ``beams`` rings × ``azimuth`` steps, mount height (m), range limit and noise (m)."""

    beams: int = 64
    azimuth: int = 512
    mount_height: float = 1.73
    max_range: float = 100.0
    range_noise: float = 0.0

    def __post_init__(self) -> None:
        if self.beams < 2 or self.azimuth < 8:
            raise ValueError(
                f"sensor needs ≥ 2 beams and ≥ 8 azimuth steps, got {self.beams} × {self.azimuth}"
            )


def beam_elevations(beams: int = 64) -> np.ndarray:
    """Elevation angles (degrees), highest first: for 64 beams the two HDL-64E blocks (+2.0…−8.33 in 32 steps,
    −8.83…−24.8 in 32 steps); otherwise evenly from +2.0 to −24.8."""
    if beams == 64:
        return np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.8, 32)])
    return np.linspace(2.0, -24.8, beams)


def ray_directions(sensor: SensorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (beams·azimuth, 3) in ring-major order and the ring id of each ray."""
    elevation = np.radians(beam_elevations(sensor.beams))
    azimuth = (np.arange(sensor.azimuth) + 0.5) / sensor.azimuth * 2.0 * np.pi
    el, az = np.meshgrid(elevation, azimuth, indexing="ij")
    directions = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
    ring = np.repeat(np.arange(sensor.beams), sensor.azimuth)
    return directions, ring


@dataclass
class Scene:
    """Primitives in sensor coordinates (the sensor sits at the origin, the ground at z = −mount_height)."""

    ground_z: float
    yaw: float  # rotation of the street layout
    road_offset: float
    road_half_width: float
    sidewalk_width: float
    cross_road_at: float | None
    parking_span: tuple[float, float]
    boxes: list[dict] = field(default_factory=list)  # centre (3,), half (3,), yaw, raw, inst
    cylinders: list[dict] = field(default_factory=list)  # centre (2,), radius, z0, z1, raw, inst
    spheres: list[dict] = field(default_factory=list)  # centre (3,), radius, raw, inst

    def to_local(self, xy: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.stack([c * xy[..., 0] + s * xy[..., 1], -s * xy[..., 0] + c * xy[..., 1]], -1)

    def to_world(self, uv: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        uv = np.asarray(uv, dtype=np.float64)
        return np.stack([c * uv[..., 0] - s * uv[..., 1], s * uv[..., 0] + c * uv[..., 1]], -1)

    def ground_label(self, xy: np.ndarray) -> np.ndarray:
        """Raw id of the ground at sensor-frame (x, y): road, parking, sidewalk or terrain."""
        uv = self.to_local(xy)
        v = np.abs(uv[:, 1] - self.road_offset)
        label = np.full(len(xy), RAW["terrain"], dtype=np.int64)
        label[v < self.road_half_width + self.sidewalk_width] = RAW["sidewalk"]
        road = v < self.road_half_width
        if self.cross_road_at is not None:
            road |= np.abs(uv[:, 0] - self.cross_road_at) < self.road_half_width
        label[road] = RAW["road"]
        lo, hi = self.parking_span
        parking = (
            (v > self.road_half_width - 2.3) & (v < self.road_half_width) & (uv[:, 0] > lo) & (uv[:, 0] < hi)
        )
        label[parking & (uv[:, 1] > self.road_offset)] = RAW["parking"]
        return label


def make_scene(rng: np.random.Generator, mount_height: float = 1.73) -> Scene:
    """A random street: layout parameters, then objects placed in the street's own frame (u along the road)."""
    ground = -mount_height
    scene = Scene(
        ground_z=ground,
        yaw=float(rng.uniform(0, 2 * np.pi)),
        road_offset=float(rng.uniform(-1.5, 1.5)),
        road_half_width=float(rng.uniform(3.5, 6.0)),
        sidewalk_width=float(rng.uniform(2.0, 4.0)),
        cross_road_at=float(rng.uniform(-25, 25)) if rng.random() < 0.5 else None,
        parking_span=(float(rng.uniform(-30, 0)), float(rng.uniform(5, 30))),
    )
    inst = iter(range(1, 10_000))
    edge = scene.road_half_width + scene.sidewalk_width

    def box(u: float, v: float, length: float, width: float, height: float, yaw: float, raw: int, z0: float = 0.0,
            instance: int = 0) -> None:  # fmt: skip
        centre = np.array([*scene.to_world([u, v]), ground + z0 + height / 2])
        scene.boxes.append({"centre": centre, "half": np.array([length, width, height]) / 2,
                            "yaw": scene.yaw + yaw, "raw": raw, "inst": instance})  # fmt: skip

    def cylinder(
        u: float, v: float, radius: float, z0: float, z1: float, raw: int, instance: int = 0
    ) -> None:
        scene.cylinders.append({"centre": scene.to_world([u, v]), "radius": radius, "z0": ground + z0,
                                "z1": ground + z1, "raw": raw, "inst": instance})  # fmt: skip

    # buildings in rows on both sides, with gaps, then the enclosing wall (high enough for the +2° beam)
    for side in (-1, 1):
        setback = edge + rng.uniform(1.0, 6.0)
        u = -45.0
        while u < 45.0:
            length = rng.uniform(8, 20)
            if rng.random() < 0.75:
                depth = rng.uniform(8, 14)
                v = scene.road_offset + side * (setback + depth / 2)
                box(u + length / 2, v, length, depth, rng.uniform(5, 16), 0.0, RAW["building"])
            else:  # a gap with a fence and vegetation
                v = scene.road_offset + side * (setback + 0.5)
                box(u + length / 2, v, length * 0.9, 0.08, rng.uniform(1.0, 1.8), 0.0, RAW["fence"])
                box(
                    u + length / 2,
                    v + side * 3.0,
                    length * 0.8,
                    3.0,
                    rng.uniform(1.0, 3.0),
                    0.0,
                    RAW["vegetation"],
                )
            u += length + rng.uniform(0.5, 4.0)
    half = rng.uniform(48, 60)
    for angle in (0.0, np.pi / 2, np.pi, 1.5 * np.pi):
        c, s = np.cos(scene.yaw + angle), np.sin(scene.yaw + angle)
        centre = np.array([half * c, half * s, ground + 7.5])
        scene.boxes.append({"centre": centre, "half": np.array([1.0, half + 2.0, 7.5]), "yaw": scene.yaw + angle,
                            "raw": RAW["building"], "inst": 0})  # fmt: skip
    # vehicles on the road (not over the sensor)
    for _ in range(rng.integers(4, 12)):
        truck = rng.random() < 0.2
        length, width, height = (rng.uniform(7, 10), 2.5, rng.uniform(2.8, 3.6)) if truck else (
            rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.7))  # fmt: skip
        lane = rng.choice([-1, 1]) * rng.uniform(1.2, max(1.3, scene.road_half_width - width / 2))
        u = rng.uniform(-40, 40)
        if abs(u) < length / 2 + 2.0 and abs(lane) < 3.0:
            u += np.sign(u or 1.0) * (length + 4.0)
        box(u, scene.road_offset + lane, length, width, height, rng.normal(0, 0.05) + (np.pi if lane < 0 else 0),
            RAW["truck" if truck else "car"], z0=0.0, instance=next(inst))  # fmt: skip
    # poles (some with signs), trees, persons on the sidewalks / terrain
    for _ in range(rng.integers(6, 14)):
        side = rng.choice([-1, 1])
        u, v = (
            rng.uniform(-40, 40),
            scene.road_offset + side * (scene.road_half_width + rng.uniform(0.3, 1.0)),
        )
        top = rng.uniform(4, 7)
        cylinder(u, v, rng.uniform(0.08, 0.15), 0.0, top, RAW["pole"], next(inst))
        if rng.random() < 0.5:
            box(u, v - side * 0.4, 0.05, 0.7, 0.7, rng.uniform(0, np.pi), RAW["traffic-sign"], z0=top - 1.0)
    for _ in range(rng.integers(6, 16)):
        side = rng.choice([-1, 1])
        u = rng.uniform(-42, 42)
        v = scene.road_offset + side * (edge - rng.uniform(0.5, 1.5))
        trunk = rng.uniform(2.0, 3.5)
        radius = rng.uniform(1.5, 3.0)
        cylinder(u, v, rng.uniform(0.15, 0.3), 0.0, trunk + radius * 0.5, RAW["trunk"], next(inst))
        centre = np.array([*scene.to_world([u, v]), ground + trunk + radius * 0.8])
        scene.spheres.append({"centre": centre, "radius": radius, "raw": RAW["vegetation"], "inst": 0})
    for _ in range(rng.integers(2, 8)):
        side = rng.choice([-1, 1])
        u = rng.uniform(-30, 30)
        v = scene.road_offset + side * (scene.road_half_width + rng.uniform(0.8, scene.sidewalk_width - 0.3))
        if abs(u) < 1.0 and abs(v) < 1.0:
            continue
        cylinder(u, v, 0.25, 0.0, rng.uniform(1.55, 1.9), RAW["person"], next(inst))
    return scene


def _rotate_z(vectors: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotate (..., B, 3) vectors by −angle (B,) about z (into a box's frame)."""
    c, s = np.cos(angle), np.sin(angle)
    x, y = vectors[..., 0], vectors[..., 1]
    return np.stack([c * x + s * y, -s * x + c * y, vectors[..., 2]], -1)


def cast_rays(scene: Scene, directions: np.ndarray) -> dict[str, np.ndarray]:
    """Nearest hit per ray: distance (inf = no hit), raw id, instance id and |cos incidence|."""
    n = len(directions)
    best_t = np.full(n, np.inf)
    raw = np.zeros(n, dtype=np.int64)
    inst = np.zeros(n, dtype=np.int64)
    cos = np.ones(n)

    def keep(t: np.ndarray, labels: np.ndarray, instances: np.ndarray, cosines: np.ndarray) -> None:
        better = t < best_t
        best_t[better] = t[better]
        raw[better], inst[better], cos[better] = labels[better], instances[better], cosines[better]

    dz = directions[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(dz < -1e-9, scene.ground_z / dz, np.inf)
    hit_xy = directions[:, :2] * np.where(np.isfinite(t), t, 0.0)[:, None]
    keep(t, scene.ground_label(hit_xy), np.zeros(n, dtype=np.int64), np.abs(dz))

    if scene.boxes:
        centre = np.stack([b["centre"] for b in scene.boxes])
        half = np.stack([b["half"] for b in scene.boxes])
        yaw = np.array([b["yaw"] for b in scene.boxes])
        origin = _rotate_z(-centre, yaw).astype(np.float32)  # (B, 3); float32 halves the (R, B, 3) work
        d = _rotate_z(np.broadcast_to(directions[:, None, :].astype(np.float32), (n, len(yaw), 3)), yaw)
        half = half.astype(np.float32)
        safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1, t2 = (-half - origin) / safe, (half - origin) / safe
        near_axis = np.minimum(t1, t2)
        t_near, t_far = near_axis.max(-1), np.maximum(t1, t2).min(-1)
        ok = (t_near <= t_far) & (t_near > 1e-6)
        t_box = np.where(ok, t_near, np.inf)
        j = t_box.argmin(1)
        rows = np.arange(n)
        axis = near_axis[rows, j].argmax(-1)
        keep(t_box[rows, j].astype(np.float64), np.array([b["raw"] for b in scene.boxes])[j],
             np.array([b["inst"] for b in scene.boxes])[j], np.abs(d[rows, j, axis]))  # fmt: skip
    if scene.cylinders:
        centre = np.stack([c["centre"] for c in scene.cylinders])  # (C, 2)
        radius = np.array([c["radius"] for c in scene.cylinders])
        dxy = directions[:, :2]
        a = (dxy**2).sum(1)[:, None]
        dc = dxy @ centre.T  # (R, C)
        disc = dc**2 - a * ((centre**2).sum(1) - radius**2)[None]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (dc - np.sqrt(np.maximum(disc, 0))) / a
        z = t * directions[:, 2:3]
        z0 = np.array([c["z0"] for c in scene.cylinders])
        z1 = np.array([c["z1"] for c in scene.cylinders])
        ok = (disc > 0) & (t > 1e-6) & (z >= z0) & (z <= z1)
        t_cyl = np.where(ok, t, np.inf)
        j = t_cyl.argmin(1)
        rows = np.arange(n)
        tj = t_cyl[rows, j]
        normal = (dxy * np.where(np.isfinite(tj), tj, 0)[:, None] - centre[j]) / radius[j, None]
        keep(tj, np.array([c["raw"] for c in scene.cylinders])[j], np.array([c["inst"] for c in scene.cylinders])[j],
             np.abs((dxy * normal).sum(1)))  # fmt: skip
    if scene.spheres:
        centre = np.stack([s["centre"] for s in scene.spheres])
        radius = np.array([s["radius"] for s in scene.spheres])
        dc = directions @ centre.T
        disc = dc**2 - ((centre**2).sum(1) - radius**2)[None]
        t = dc - np.sqrt(np.maximum(disc, 0))
        ok = (disc > 0) & (t > 1e-6)
        t_sph = np.where(ok, t, np.inf)
        j = t_sph.argmin(1)
        rows = np.arange(n)
        tj = t_sph[rows, j]
        normal = (directions * np.where(np.isfinite(tj), tj, 0)[:, None] - centre[j]) / radius[j, None]
        keep(tj, np.array([s["raw"] for s in scene.spheres])[j], np.array([s["inst"] for s in scene.spheres])[j],
             np.abs((directions * normal).sum(1)))  # fmt: skip
    return {"t": best_t, "raw": raw, "inst": inst, "cos": np.clip(cos, 0.0, 1.0)}


def generate_scan(seed: int, sensor: SensorConfig = SensorConfig()) -> Scan:
    """One synthetic scan (points, raw labels with instance bits, true ring ids), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    scene = make_scene(rng, sensor.mount_height)
    directions, ring = ray_directions(sensor)
    hits = cast_rays(scene, directions)
    valid = np.isfinite(hits["t"]) & (hits["t"] <= sensor.max_range)
    t = hits["t"][valid]
    if sensor.range_noise > 0:
        t = t + rng.normal(0.0, sensor.range_noise, size=t.shape)
    raw = hits["raw"][valid]
    reflect = np.zeros(int(raw.max()) + 1)
    for key, value in REFLECTIVITY.items():
        if key < len(reflect):
            reflect[key] = value
    jitter = rng.uniform(0.85, 1.15, size=int(hits["inst"].max()) + 1)
    intensity = np.clip(reflect[raw] * hits["cos"][valid] * jitter[hits["inst"][valid]], 0.0, 1.0)
    xyz = directions[valid] * t[:, None]
    points = np.concatenate([xyz, intensity[:, None]], 1).astype(np.float32)
    labels = pack_labels(raw, hits["inst"][valid])
    return Scan(points, labels, ring[valid].astype(np.int64), name=f"synthetic-{seed}")


def scan_seed(seed: int, sequence: str, frame: int) -> int:
    """The per-scan seed of ``write_root`` (independent of how many scans are generated)."""
    return int(np.random.SeedSequence([seed, int(sequence), frame]).generate_state(1)[0])


def write_root(
    out: str | os.PathLike[str],
    sequences: dict[str, int],
    sensor: SensorConfig = SensorConfig(),
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write ``<out>/sequences/<seq>/{velodyne,labels,rings}/<frame>`` for ``{seq: number of scans}`` + meta.json."""
    from paperlab_core.logging import track, write_json_atomic

    out = Path(out)
    jobs = [(seq, frame) for seq, count in sequences.items() for frame in range(count)]
    iterator = track(jobs, description="generating scans") if progress else jobs
    for seq, frame in iterator:
        folder = out / "sequences" / seq
        for sub in ("velodyne", "labels", "rings"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        scan = generate_scan(scan_seed(seed, seq, frame), sensor)
        write_bin(folder / "velodyne" / f"{frame:06d}.bin", scan.points)
        write_label(folder / "labels" / f"{frame:06d}.label", scan.labels)
        np.save(folder / "rings" / f"{frame:06d}.npy", scan.ring)
    write_json_atomic(out / "meta.json", {"generator": "lidar_robust.synthetic", "seed": seed,
                                          "sensor": asdict(sensor), "sequences": sequences})  # fmt: skip
    return out


def read_meta(root: str | os.PathLike[str]) -> dict | None:
    path = Path(root) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else None
