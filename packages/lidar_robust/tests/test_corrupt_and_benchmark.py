from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lidar_robust.cli import main
from lidar_robust.corrupt import verify_manifest
from lidar_robust.formats import learning_labels, read_bin, read_label, write_bin, write_label
from lidar_robust.synthetic import SensorConfig, write_root

FAST = "fog_heavy,global_moderate,local_heavy,dense_32beam,sparse_16beam,clean_data"
FAST_ROBO3D = "fog/light,motion_blur/heavy,crosstalk/light,incomplete_echo/heavy,beam_missing/light,cross_sensor/heavy,wet_ground/light"


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    return write_root(tmp_path_factory.mktemp("root"), {"08": 2}, SensorConfig(azimuth=128), seed=0)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name not in {"manifest.json", "metrics.json", "config.yaml"}}  # fmt: skip


def test_corrupt_is_worker_independent_and_2dpass_readable(synthetic_root, tmp_path):
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        argv = [
            "corrupt",
            str(synthetic_root),
            str(out),
            "--registry",
            "both",
            "--subsets",
            f"{FAST},{FAST_ROBO3D}",
        ]
        assert main([*argv, "--workers", str(workers)]) == 0
        outs.append(out)
    assert _tree(outs[0]) == _tree(outs[1]) and len(_tree(outs[0])) > 20
    assert verify_manifest(outs[0]) == []
    manifest = json.loads((outs[0] / "manifest.json").read_text())
    assert {s["info"].get("alpha") for s in manifest["scans"] if s["subset"] == "fog_heavy"} <= {
        0.0, 0.005, 0.01, 0.02, 0.03, 0.06}  # fmt: skip
    # 2DPASS reading: data_path.replace('sequences', 'SemanticKITTI-C'), flat subsets, & 0xFFFF, learning map
    data_path = str(outs[0] / "sequences")
    for subset in FAST.split(","):
        folder = Path(data_path.replace("sequences", "SemanticKITTI-C")) / subset
        for scan in sorted((folder / "velodyne").glob("*.bin")):
            points = read_bin(scan)
            labels = read_label(folder / "labels" / (scan.stem + ".label"), len(points))
            assert learning_labels(labels & 0xFFFF, strict=True).max() <= 19
    assert (outs[0] / "fog" / "light" / "velodyne" / "000000.bin").is_file()


def test_corrupt_bad_input_leaves_nothing(synthetic_root, tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["corrupt", str(synthetic_root), str(out), "--subsets", "nope"]) != 0
    assert "unknown corruption subset(s) ['nope']" in capsys.readouterr().err
    assert main(["corrupt", str(synthetic_root), str(out), "--sequences", "05"]) != 0
    assert "sequences/05/velodyne does not exist" in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("*.bin"))
    good = tmp_path / "good"
    assert main(["corrupt", str(synthetic_root), str(good), "--subsets", "local_light"]) == 0
    assert main(["corrupt", str(synthetic_root), str(good), "--subsets", "local_light"]) != 0
    assert "already exists" in capsys.readouterr().err
    assert main(["corrupt", str(synthetic_root), str(good), "--subsets", "local_light", "--overwrite"]) == 0


def test_bad_scan_files_give_one_line_errors(tmp_path, capsys):
    root = tmp_path / "r"
    (root / "sequences" / "08" / "velodyne").mkdir(parents=True)
    (root / "sequences" / "08" / "labels").mkdir(parents=True)
    write_bin(root / "sequences" / "08" / "velodyne" / "000000.bin", np.zeros((4, 4), np.float32))
    write_label(root / "sequences" / "08" / "labels" / "000000.label", np.zeros(3, np.uint32))
    assert main(["corrupt", str(root), str(tmp_path / "o"), "--subsets", "local_light"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        err[-1].startswith("lidar-robust: error: label file")
        and "3 labels but its scan has 4 points" in err[-1]
    )
    assert not any((tmp_path / "o").rglob("*.bin")) if (tmp_path / "o").exists() else True


def test_benchmark_verb_on_a_corrupted_root(synthetic_root, tmp_path, tiny_trainer):
    from lidar_robust.data import LidarDataModule
    from lidar_robust.module import SegmentationModule

    module = SegmentationModule(cr=0.125, voxel_size=0.4)
    trainer = tiny_trainer()
    trainer.fit(module, datamodule=LidarDataModule(train_scans=2, val_scans=2, azimuth=64))
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    out = tmp_path / "c"
    assert (
        main(["corrupt", str(synthetic_root), str(out), "--subsets", "local_light,dense_16beam,clean_data"])
        == 0
    )
    bench = tmp_path / "b"
    assert (
        main(["benchmark", "--ckpt", str(ckpt), "--root", str(out), "--num-vote", "2", "--out", str(bench)])
        == 0
    )
    result = json.loads((bench / "benchmark.json").read_text())
    assert set(result["per_subset"]) == {"clean", "local_light", "dense_16beam"}
    assert all(0 <= v <= 100 for v in result["per_subset"].values())
