from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lidar_robust.formats import Scan, read_scan
from lidar_robust.synthetic import SensorConfig, generate_scan


@pytest.fixture(scope="session")
def synthetic_scan() -> Scan:
    """64 × 1024 rays (≈ 65k points): large enough for the ±5 % statistics of the corruption criteria."""
    return generate_scan(11, SensorConfig(azimuth=1024))


@pytest.fixture(scope="session")
def small_scan() -> Scan:
    return generate_scan(3, SensorConfig(azimuth=512))


@pytest.fixture(scope="session")
def kitti_dir(shared_data: Path) -> Path:
    folder = shared_data / "semantickitti"
    if not (folder / "sequences" / "00" / "velodyne").is_dir():
        pytest.skip("SemanticKITTI sample scans not in ../shared/data")
    return folder


@pytest.fixture(scope="session")
def real_scans(kitti_dir: Path) -> list[Scan]:
    from lidar_robust.rings import ring_ids

    scans = []
    for frame in range(3):
        scan = read_scan(kitti_dir / "sequences" / "00" / "velodyne" / f"{frame:06d}.bin")
        scan.ring = ring_ids(scan.points)
        scans.append(scan)
    return scans


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
