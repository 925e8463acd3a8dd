"""CLI verbs (in-process, offline): train smoke, presets, pretrain-teacher, finetune, export to timm, determinism."""

from __future__ import annotations

import json

import pytest
import timm
import torch
import yaml
from tinymim.cli import main
from tinymim.commands import export_state
from tinymim.models import ViTConfig, build_vit, embed_tokens
from tinymim.module import load_student_state
from tinymim.teacher import save_tinymim_checkpoint


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _print_config(capsys, *args):
    assert main(["train", *args, "--print_config"]) is None or True
    return yaml.safe_load(capsys.readouterr().out)


def test_train_fast_dev_run_writes_student(isolated_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    assert main(["train", "--trainer.fast_dev_run=true", "--data.dataset=digits32"]) == 0
    run = next((tmp_path / "runs" / "tinymim").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distill"]["frozen_parameters"] and (run / "student.pth").is_file()


def test_paper_preset_resolves_to_recipe(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--config", "paper-b-from-l", "--print_config"])
    cfg = yaml.safe_load(capsys.readouterr().out)
    model = cfg["model"]
    assert model["betas"] == [0.9, 0.95] and model["weight_decay"] == 0.05 and model["blr"] == 1.5e-4
    assert model["lr"] is None and model["warmup_epochs"] == 15 and model["min_lr"] == 0.0
    assert cfg["trainer"]["max_epochs"] == 300 and model["drop_path"] == 0.1
    assert model["drop_path_schedule"] == "constant" and model["input"] == "raw"
    assert model["teacher"]["target_block"] == 18 and model["student"]["last_heads"] == 16
    assert model["weight_decay_cls_token"] is True
    data = cfg["data"]
    assert (
        data["crop_scale"] == [0.2, 1.0]
        and data["student_color_jitter"] is True
        and data["color_jitter"] == 0.4
    )


def test_ablation_and_finetune_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--config", "paper-b-from-l", "--config", "ablation-cls", "--print_config"])
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["trainer"]["max_epochs"] == 100 and cfg["model"]["target"] == "cls"
    with pytest.raises(SystemExit):
        main(["finetune", "--config", "finetune-b", "--print_config"])
    ft = yaml.safe_load(capsys.readouterr().out)
    m, d = ft["model"], ft["data"]
    assert (m["layer_decay"], m["blr"], m["drop_path"], m["mixup"], m["cutmix"]) == (
        0.65,
        5e-4,
        0.2,
        0.8,
        1.0,
    )
    assert (m["label_smoothing"], m["warmup_epochs"], m["min_lr"], ft["trainer"]["max_epochs"]) == (
        0.1,
        5,
        1e-6,
        100,
    )
    assert d["rand_augment"] == "rand-m9-mstd0.5-inc1" and d["reprob"] == 0.25


def test_pretrain_teacher_then_finetune_and_export(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    out = tmp_path / "teacher.pth"
    assert (
        main(
            [
                "pretrain-teacher",
                "--dataset",
                "digits32",
                "--epochs",
                "1",
                "--max_steps",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    blob = torch.load(out, weights_only=False)
    assert blob["meta"]["block_heads"] == [4] * 6 and "decoder" in blob["meta"]
    assert (
        main(
            [
                "finetune",
                "--ckpt",
                str(out),
                "--trainer.max_epochs=1",
                "--trainer.limit_train_batches=2",
                "--trainer.limit_val_batches=1",
                "--trainer.limit_test_batches=1",
                "--data.dataset=digits32",
                "--model.num_classes=10",
            ]
        )
        == 0
    )
    run = next((tmp_path / "runs" / "tinymim").glob("*-run"))
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "finetuned.pth").is_file()
    assert json.loads((run / "metrics.json").read_text())["finetune_test"]["test/acc1"] >= 0.0
    assert main(["evaluate", "--ckpt", str(ckpt)]) == 0
    assert main(["export", "--ckpt", str(out), "--out", str(tmp_path / "export.pth")]) == 0


def test_export_loads_into_timm_with_same_block_output(tmp_path):
    config = ViTConfig(img_size=32, patch_size=4, embed_dim=384, depth=2, num_heads=6, last_heads=12)
    student = build_vit(config)
    path = save_tinymim_checkpoint(tmp_path / "student.pth", student, config)
    blob = export_state(path, "avg")
    assert not any(k.startswith("norm.") for k in blob["model"])
    torch.save(blob, tmp_path / "export.pth")
    model = timm.create_model(
        "vit_small_patch16_224",
        pretrained=True,
        img_size=32,
        patch_size=4,
        depth=2,
        global_pool="avg",
        fc_norm=True,
        num_classes=10,
        pretrained_cfg_overlay=dict(file=str(tmp_path / "export.pth")),
    )
    missing, unexpected = model.load_state_dict(blob["model"], strict=False)
    assert set(missing) <= {"head.weight", "head.bias", "fc_norm.weight", "fc_norm.bias"} and not unexpected
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = student.blocks[0](embed_tokens(student, images))
        theirs = model.blocks[0](model.norm_pre(model._pos_embed(model.patch_embed(images))))
    assert torch.allclose(ours, theirs, atol=1e-5)


def _five_step_losses(tmp_path):
    from pytorch_lightning import Trainer
    from tinymim.data import TinyMIMDataModule
    from tinymim.module import TinyMIMDistill
    from tinymim.teacher import TeacherConfig

    from paperlab_core.runtime import seed_everything

    seed_everything(0)
    model = TinyMIMDistill(teacher=TeacherConfig(source="random"))
    data = TinyMIMDataModule(batch_size=32, epoch_size=160)
    trainer = Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=data)
    return model._running


def test_determinism_of_two_runs(tmp_path):
    first = _five_step_losses(tmp_path)
    second = _five_step_losses(tmp_path)
    assert len(first) == 5 and first == second


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_cpu_processes_without_unused_parameter_search(cli_runner, tmp_path):
    # DDP's default find_unused_parameters=False fails on the second step if a parameter gets no gradient
    proc = cli_runner(
        "tinymim.cli:main",
        "train",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.max_steps=3",
        "--model.teacher.source=random",
        "--data.dataset=digits32",
        "--data.batch_size=32",
        "--data.epoch_size=256",
        env={"XDG_CACHE_HOME": str(tmp_path / "cache")},
    )
    assert "Trainer.fit` stopped" in proc.stderr + proc.stdout


def test_train_chain_passes_each_student_on_as_the_next_teacher(isolated_cache, tmp_path, monkeypatch):
    """`train --chain A,B`: step B distils from step A's student (a `tinymim:` checkpoint whose adaptive last block
    has 4 heads, read natively), each step in its own run directory, listed in chain.json."""
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    second = tmp_path / "second.yaml"
    second.write_text(
        yaml.safe_dump(
            {
                "model": {
                    "student": {"embed_dim": 16, "depth": 2, "num_heads": 2, "last_heads": 4},
                    "teacher": {"target_block": 4, "relation_heads": "native"},
                }
            }
        )
    )
    args = ["train", "--chain", f"default,{second}", "--trainer.fast_dev_run=true", "--data.dataset=digits32"]
    assert main([*args, "--model.teacher.source=random"]) == 0
    root = next((tmp_path / "runs" / "tinymim").iterdir())
    record = json.loads((root / "chain.json").read_text())
    first, last = record["steps"]
    assert first["teacher"] is None and last["teacher"] == first["student"]
    metrics = json.loads((root / "step2-second" / "metrics.json").read_text())["distill"]
    assert metrics["teacher"]["source"] == f"tinymim:{first['student']}"
    assert metrics["teacher"]["target_block"] == 4
    _, config, _ = load_student_state(last["student"])
    assert config.embed_dim == 16 and config.depth == 2


def test_train_chain_rejects_bad_values(capsys):
    assert main(["train", "--chain", "default"]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["train", "--chain", "B-S-T", "--config", "default"]) == 2
    assert "--config" in capsys.readouterr().err


def test_named_chains_are_the_papers_sequences():
    from importlib.resources import files

    from tinymim.chain import NAMED_CHAINS, chain_steps

    assert chain_steps("L-B-S") == ["paper-b-from-l", "paper-s-from-b"]
    assert chain_steps("B-S-T") == ["paper-s-from-mae-b", "paper-t-from-s"]
    for steps in NAMED_CHAINS.values():
        first, second = (
            yaml.safe_load((files("tinymim") / "configs" / f"{s}.yaml").read_text()) for s in steps
        )
        assert first["model"]["teacher"]["source"].startswith("mae:")
        assert second["model"]["teacher"]["source"].startswith("tinymim:")
        assert second["model"]["teacher"]["target_block"] == first["model"]["student"]["depth"]
