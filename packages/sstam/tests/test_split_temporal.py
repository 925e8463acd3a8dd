"""Split temporal models (ours, 0.6): flickering and floating from two TimeSformers with their own backbones;
a fine-tune of the flickering model alone (the floating model frozen, bit-identical after training); default
off, so older bundles and configs load and score exactly as before."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from sstam.bundle import load_model, save_bundle, state_sha256
from sstam.config import PipelineConfig, SpatialConfig, TemporalConfig, to_dict
from sstam.models import SplitTemporalDetector, TemporalDetector, build_temporal
from sstam.stills import load_still
from sstam.synth import pan_clip

from paperlab_core.errors import ConfigError

TINY = {
    "variant": "sstam_ours",
    "image_size": 32,
    "patch_size": 8,
    "num_frames": 4,
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def _cubes(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    cubes = torch.randint(0, 256, (n, 5, 32, 32, 3), dtype=torch.uint8, generator=generator)
    return cubes, torch.tensor([i % 2 == 0 for i in range(n)])


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return pan_clip(load_still("astronaut"), 64, 9)


@pytest.fixture(scope="module")
def old_bundle(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle in the pre-0.6 layout: its config.yaml has no ``split`` key."""
    folder = tmp_path_factory.mktemp("old") / "bundle"
    config = {
        "spatial": {"backbone": "mobilenetv3_small_050", "layout": "shared", "inputs": "rgb+cues"},
        "temporal": {**TINY, "attention_type": "divided_space_time", "diff_scale": 4.0, "cues": True},
        "pipeline": {"patch": 32, "batch_size": 64},
    }
    engine = tiny_model.engine
    save_bundle(folder, engine.spatial, engine.temporal, config, tiny_model.fusion, {"command": "test"})
    return folder


def test_default_off_builds_the_one_model_kind_with_the_same_initialisation() -> None:
    config = to_dict(TemporalConfig(**TINY))
    assert config["split"] is False
    torch.manual_seed(3)
    built = build_temporal(config)
    torch.manual_seed(3)
    plain = TemporalDetector(**TINY, cues=True)
    assert type(built) is TemporalDetector
    assert built.state_dict().keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in built.state_dict().items())


def test_an_old_bundle_loads_and_scores_bit_identically(tiny_model, old_bundle: Path, clip) -> None:
    model = load_model(old_bundle)
    assert type(model.engine.temporal) is TemporalDetector
    saved = torch.load(old_bundle / "detectors.pt", weights_only=True)
    assert not any(".flickering." in k or ".floating." in k for k in saved)
    before, after = tiny_model.score(clip), model.score(clip)
    assert after.score == before.score and after.intensities == before.intensities


def test_default_module_keeps_the_old_bundle_config_and_optimises_every_parameter() -> None:
    from sstam.module import SSTAMModule

    module = SSTAMModule(temporal=TemporalConfig(**TINY), pipeline=PipelineConfig(patch=32))
    assert type(module.temporal) is TemporalDetector
    assert "split" not in module.bundle_config()["temporal"]  # config.yaml as written before 0.6
    assert all(p.requires_grad for p in module.parameters())


def test_split_model_started_from_one_model_reads_the_same(tiny_model) -> None:
    single = tiny_model.engine.temporal
    split = SplitTemporalDetector(**TINY, cues=True).eval()
    split.load_unsplit(single.state_dict())
    cubes, has_prev = _cubes()
    x = TemporalDetector.prepare(cubes)
    with torch.no_grad():
        assert torch.equal(split(x, has_prev), single(x, has_prev))
    # after that the two models are independent: changing flickering's weights leaves column 1 alone
    with torch.no_grad():
        for p in split.flickering.parameters():
            p.add_(0.01)
        out = split(x, has_prev)
        assert torch.equal(out[:, 1], single(x, has_prev)[:, 1])
        assert not torch.equal(out[:, 0], single(x, has_prev)[:, 0])


def test_split_bundle_round_trip(tmp_path: Path, tiny_model, clip) -> None:
    torch.manual_seed(1)
    split = SplitTemporalDetector(**TINY, cues=True)
    config = {
        "spatial": {"backbone": "mobilenetv3_small_050", "layout": "shared", "inputs": "rgb+cues"},
        "temporal": to_dict(TemporalConfig(**TINY, split=True)),
        "pipeline": {"patch": 32, "batch_size": 64},
    }
    save_bundle(tmp_path / "b", tiny_model.engine.spatial, split, config, tiny_model.fusion, {"command": "t"})
    state = torch.load(tmp_path / "b" / "detectors.pt", weights_only=True)
    assert any(k.startswith("temporal.flickering.backbone.") for k in state)
    assert any(k.startswith("temporal.floating.backbone.") for k in state)
    model = load_model(tmp_path / "b")
    loaded = model.engine.temporal
    assert isinstance(loaded, SplitTemporalDetector)
    assert all(torch.equal(v, split.state_dict()[k].cpu()) for k, v in loaded.state_dict().items())
    result = model.score(clip)  # the pipeline runs both models
    assert np.isfinite(result.score) and result.intensities["flickering"] is not None
    cubes, has_prev = _cubes(seed=2)
    x = TemporalDetector.prepare(cubes)
    with torch.no_grad():
        expected = torch.cat([split.flickering(x, has_prev)[:, :1], split.floating(x, has_prev)[:, 1:]], 1)
        assert torch.equal(loaded(x, has_prev), expected)
    from sstam.commands import describe_model

    assert "split" in describe_model(model)["temporal_variant"]


def _module(init_from: Path, temporal_train: str = "flickering"):
    from sstam.config import FusionConfig
    from sstam.module import SSTAMModule

    return SSTAMModule(
        spatial=SpatialConfig(),
        temporal=TemporalConfig(**TINY, split=True),
        pipeline=PipelineConfig(patch=32),
        fusion=FusionConfig(kind="nnls"),
        lr=1e-2,
        init_from=str(init_from),
        temporal_train=temporal_train,
    )


def test_flicker_only_fine_tune_leaves_the_floating_model_bit_identical(
    old_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Lightning fit (the module's optimiser and schedule, train/eval switching) on temporal batches with
    both labels: the flickering model moves, the floating model — frozen from init_from — does not."""
    from pytorch_lightning import Trainer
    from sstam.module import SSTAMModule

    monkeypatch.setattr(SSTAMModule, "on_train_end", lambda self: None)  # no fusion fit / bundle in this test
    module = _module(old_bundle)
    start = load_model(old_bundle).engine.temporal.state_dict()
    floating = {k: v.clone() for k, v in module.temporal.floating.state_dict().items()}
    flickering = {k: v.clone() for k, v in module.temporal.flickering.state_dict().items()}
    assert all(torch.equal(v, start[k]) for k, v in floating.items())  # both models start from the bundle's
    assert all(torch.equal(v, start[k]) for k, v in flickering.items())

    cubes, has_prev = _cubes(8)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 4)
    batches = [{"temporal": (cubes, labels, has_prev)}] * 4
    trainer = Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    assert trainer.global_step == 4
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in module.temporal.floating.parameters()}
    assert {id(p) for p in module.temporal.flickering.parameters()} <= optimised
    after = module.temporal.floating.state_dict()
    assert all(torch.equal(after[k], v) for k, v in floating.items())
    moved = module.temporal.flickering.state_dict()
    assert any(not torch.equal(moved[k], v) for k, v in flickering.items())
    module.train()
    assert module.temporal.flickering.training and not module.temporal.floating.training

    record = module.split_provenance()
    assert (
        record["floating"]["weights_sha256"]
        == state_sha256({k: v for k, v in start.items()})
        != record["flickering"]["weights_sha256"]
    )
    assert (
        record["floating"]["how"].startswith("frozen")
        and "flickering loss only" in record["flickering"]["how"]
    )
    json.dumps(record)


def test_split_module_from_a_split_bundle_and_the_reverse(
    tmp_path: Path, tiny_model, old_bundle: Path
) -> None:
    from sstam.module import SSTAMModule

    module = _module(old_bundle, "both")
    assert not module.temporal.frozen and all(p.requires_grad for p in module.parameters())
    config = {"spatial": asdict(SpatialConfig()), **module.bundle_config()}
    assert config["temporal"]["split"] is True
    save_bundle(
        tmp_path / "split", module.spatial, module.temporal, config, tiny_model.fusion, {"command": "t"}
    )
    again = _module(tmp_path / "split")
    assert all(
        torch.equal(v, module.temporal.state_dict()[k]) for k, v in again.temporal.state_dict().items()
    )
    with pytest.raises(ConfigError, match="temporal.split true"):
        SSTAMModule(
            temporal=TemporalConfig(**TINY),
            pipeline=PipelineConfig(patch=32),
            init_from=str(tmp_path / "split"),
        )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--model.temporal_train", "wobble"],
            "model.temporal_train must be one of both, flickering, floating",
        ),
        (["--model.temporal_train", "flickering"], "model.temporal_train flickering trains one of two split"),
        (
            ["--model.temporal_train", "flickering", "--model.temporal.split", "true"],
            "model.temporal_train flickering freezes the other temporal model",
        ),
    ],
)
def test_bad_split_options_are_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sstam.cli import main

    code = main(["train", *args, "--trainer.fast_dev_run", "true"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == ConfigError.exit_code != 0
    errors = [line for line in lines if "error" in line]
    assert errors == [lines[-1]] and lines[-1].startswith(f"sstam: error: {message}")
