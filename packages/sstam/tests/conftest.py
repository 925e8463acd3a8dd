from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tiny_model():
    """A randomly initialised CI-sized SSTAM (no training) with a fitted NNLS fusion: shapes, not quality."""
    import torch
    from sstam.config import PipelineConfig
    from sstam.fusion import fit_fusion
    from sstam.models import SpatialDetector, TemporalDetector
    from sstam.score import SSTAM, Engine

    torch.manual_seed(0)
    spatial = SpatialDetector("mobilenetv3_small_050")
    temporal = TemporalDetector(
        "sstam_ours",
        image_size=32,
        patch_size=8,
        num_frames=4,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        cues=True,
    )
    engine = Engine(spatial, temporal, PipelineConfig(patch=32, batch_size=64))
    x = np.random.default_rng(0).random((12, 6))
    fusion, _ = fit_fusion(x, 100 - 50 * x.mean(1), [f"c{i % 3}" for i in range(12)], "nnls")
    return SSTAM(engine, fusion, "tiny")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory: pytest.TempPathFactory):
    """``tiny_model`` saved as a bundle folder (for ``sstam score --ckpt``)."""
    from sstam.bundle import save_bundle
    from sstam.config import TemporalConfig, to_dict

    folder = tmp_path_factory.mktemp("bundle") / "tiny"
    engine = tiny_model.engine
    config = {
        "spatial": {"backbone": "mobilenetv3_small_050", "layout": "shared", "inputs": "rgb+cues"},
        "temporal": to_dict(TemporalConfig("sstam_ours", 32, 8, 4, 32, 1, 2, 64)),
        "pipeline": {"patch": 32, "batch_size": 64},
    }
    save_bundle(folder, engine.spatial, engine.temporal, config, tiny_model.fusion, {"command": "test"})
    return folder
