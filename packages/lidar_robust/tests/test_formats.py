from __future__ import annotations

import hashlib

import numpy as np
import pytest
from lidar_robust.formats import (
    LEARNING_MAP,
    count_unknown,
    learning_labels,
    pack_labels,
    read_bin,
    read_label,
    read_scan,
    sequence_frames,
    unpack_labels,
    write_bin,
    write_label,
)

from paperlab_core.errors import MissingFileError, UserError


def test_label_packing_round_trip(rng):
    sem = rng.integers(0, 1 << 16, 1000).astype(np.uint32)
    inst = rng.integers(0, 1 << 16, 1000).astype(np.uint32)
    packed = pack_labels(sem, inst)
    assert np.array_equal(packed, sem + inst * 65536)
    got_sem, got_inst = unpack_labels(packed)
    assert np.array_equal(got_sem, sem) and np.array_equal(got_inst, inst)


def test_synthetic_round_trip_is_bit_exact(small_scan, tmp_path):
    write_bin(tmp_path / "a.bin", small_scan.points)
    write_label(tmp_path / "a.label", small_scan.labels)
    assert read_bin(tmp_path / "a.bin").tobytes() == small_scan.points.tobytes()
    assert read_label(tmp_path / "a.label").tobytes() == small_scan.labels.tobytes()


def test_learning_map_spot_values_and_unknown_ids():
    raw = np.array(
        [0, 1, 10, 52, 99, 252, 255, 259, 60, 81, 21, 22, 23, 7, 1000 | (5 << 16)], dtype=np.uint32
    )
    assert learning_labels(raw).tolist() == [0, 0, 1, 0, 0, 1, 8, 5, 9, 19, 0, 0, 0, 0, 0]
    assert count_unknown(raw) == 2  # 7 and 1000 (21/22/23 are the extended map)
    with pytest.raises(UserError, match=r"unknown raw label ids \[7, 1000\]"):
        learning_labels(raw, strict=True)
    assert sorted(set(LEARNING_MAP.values())) == list(range(20))


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "odd.bin").write_bytes(b"\0" * 20)
    with pytest.raises(UserError, match="20 bytes, not a multiple of 16"):
        read_bin(tmp_path / "odd.bin")
    write_label(tmp_path / "short.label", np.zeros(3, np.uint32))
    with pytest.raises(UserError, match="has 3 labels but its scan has 4 points"):
        read_label(tmp_path / "short.label", 4)
    with pytest.raises(MissingFileError, match="sequences/08/velodyne"):
        sequence_frames(tmp_path, "08")


@pytest.mark.data
def test_real_scans_round_trip_counts_and_checksums(kitti_dir, shared_data, tmp_path):
    sums = {}
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.strip().lstrip("*").removeprefix("./")] = digest
    counts = []
    for frame in range(3):
        scan = read_scan(kitti_dir / "sequences" / "00" / "velodyne" / f"{frame:06d}.bin")
        counts.append(len(scan))
        write_bin(tmp_path / "x.bin", scan.points)
        write_label(tmp_path / "x.label", scan.labels)
        for suffix, sub in (("bin", "velodyne"), ("label", "labels")):
            original = kitti_dir / "sequences" / "00" / sub / f"{frame:06d}.{suffix}"
            assert (tmp_path / f"x.{suffix}").read_bytes() == original.read_bytes()
            key = f"semantickitti/sequences/00/{sub}/{frame:06d}.{suffix}"
            if key in sums:
                assert hashlib.sha256(original.read_bytes()).hexdigest() == sums[key]
    assert counts == [124668, 124605, 124478]
    first = read_scan(kitti_dir / "sequences" / "00" / "velodyne" / "000000.bin")
    ids, n = np.unique(unpack_labels(first.labels)[0], return_counts=True)
    assert dict(zip(ids.tolist(), n.tolist(), strict=True)) == {
        0: 2184, 1: 4, 10: 4234, 40: 34228, 44: 3268, 48: 26360, 50: 18268, 51: 370, 52: 1471, 60: 1053,
        70: 27123, 71: 1192, 72: 2964, 80: 532, 81: 102, 99: 1227, 255: 88,
    }  # fmt: skip
    assert len(np.unique(unpack_labels(first.labels)[1])) >= 2
