"""CLI verbs (in-process, offline): train smoke + k-NN evaluate, presets, pretrain-teacher, finetune + evaluate,
export to timm, reproduce shards, one-line errors, determinism, and the light option tuples of ``cli.py``."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from tinymim import cli
from tinymim.cli import main
from tinymim.models import ViTConfig, build_vit, embed_tokens
from tinymim.module import load_student_state
from tinymim.teacher import save_tinymim_checkpoint


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERLAB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs" / "tinymim"


def _printed_config(capsys, verb: str, *args: str) -> dict:
    assert main([verb, *args, "--print_config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def _only(folder, pattern: str):
    (found,) = sorted(folder.glob(pattern))
    return found


def test_light_option_tuples_equal_their_registries():
    """cli.py spells choices as literal tuples (no heavy import at --help); they must track the registries."""
    from tinymim import bench, data, models, reproduce

    assert cli.DATASETS == data.DATASETS
    assert cli.REPRODUCE_DATASETS == reproduce.DATASETS
    assert cli.REPRODUCE_VARIANTS == reproduce.VARIANTS
    assert cli.ARCHS == tuple(models.ARCHS)
    assert cli.BENCH_PRESETS == tuple(bench.PRESETS)


def test_train_fast_dev_run_then_evaluate_is_the_knn_of_its_student(isolated_cache, runs, capsys):
    """`evaluate --ckpt` of a distillation checkpoint (nothing else) restores its config and reports the k-NN
    top-1 of the student, equal to the k-NN computed here from the student.pth the run wrote."""
    from tinymim.data import TinyMIMDataModule
    from tinymim.evaluate import knn_predict, pooled_features

    assert main(["train", "--trainer.fast_dev_run=true", "--data.dataset=digits32", "--model.knn_k=7"]) == 0
    run = _only(runs, "*-run")
    hint = capsys.readouterr().err  # train ends by saying what to run next, with this run's paths
    assert f"tinymim finetune --ckpt {run / 'student.pth'} --data.dataset digits32" in hint
    assert f"tinymim evaluate --ckpt {run / 'checkpoints' / 'last.ckpt'}" in hint
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["distill"]["frozen_parameters"] and (run / "student.pth").is_file()
    assert main(["evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt")]) == 0
    measured = json.loads((_only(runs, "*-evaluate") / "metrics.json").read_text())["test"]["test/knn_acc1"]

    state, config, _ = load_student_state(run / "student.pth")
    student = build_vit(config)
    student.load_state_dict(state)
    student.eval()
    dm = TinyMIMDataModule(dataset="digits32", mode="distill")
    bank_images, bank_labels, classes = dm.knn_bank()
    splits = dm.load()
    queries = pooled_features(student, dm._norm(splits.test_images))
    predicted = knn_predict(pooled_features(student, bank_images), bank_labels, queries, 7, classes)
    expected = float((predicted == splits.test_labels).float().mean())
    assert measured == pytest.approx(expected, abs=1e-6)


def test_knn_predict_is_a_majority_vote_of_the_nearest_rows():
    from tinymim.evaluate import knn_predict

    rows = [[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.2, 0.9]]
    bank = torch.nn.functional.normalize(torch.tensor(rows), dim=-1)
    labels = torch.tensor([0, 0, 1, 2, 2])
    queries = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05], [0.0, 1.0]]), dim=-1)
    assert knn_predict(bank, labels, queries, 1, 3).tolist() == [0, 1]  # the nearest row
    assert knn_predict(bank, labels, queries, 3, 3).tolist() == [0, 2]  # rows 2, 3, 4: class 2 twice
    assert knn_predict(bank, labels, queries, 5, 3).tolist() == [0, 0]  # all rows vote: a tie 2/2 goes to 0


def test_paper_preset_resolves_to_recipe(capsys):
    cfg = _printed_config(capsys, "train", "--config", "paper-b-from-l")
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
    cfg = _printed_config(capsys, "train", "--config", "paper-b-from-l", "--config", "ablation-cls")
    assert cfg["trainer"]["max_epochs"] == 100 and cfg["model"]["target"] == "cls"
    ft = _printed_config(capsys, "finetune", "--config", "finetune-b")
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
    # finetune's own base preset, and --ckpt is the init checkpoint (not a Lightning resume)
    base = _printed_config(capsys, "finetune", "--ckpt", "none")
    assert base["model"]["init"] == "none" and base["trainer"]["max_epochs"] == 30


def test_pretrain_teacher_then_finetune_evaluate_and_export(isolated_cache, runs, tmp_path):
    out = tmp_path / "pretrain"
    args = ["--data.dataset", "digits32", "--epochs", "1", "--max-steps", "2", "--out", str(out)]
    assert main(["pretrain-teacher", *args]) == 0
    teacher = out / "teacher.pth"
    blob = torch.load(teacher, weights_only=False)
    assert blob["meta"]["block_heads"] == [4] * 6 and "decoder" in blob["meta"]
    assert not isolated_cache.exists(), "a --max-steps smoke run must not install a builtin teacher"
    limits = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
    assert main(["finetune", "--ckpt", str(teacher), *limits, "--data.dataset=digits32"]) == 0
    run = _only(runs, "*-finetune")
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "finetuned.pth").is_file()
    tested = json.loads((run / "metrics.json").read_text())["test"]
    # the checkpoint alone (its init file gone) rebuilds the same classifier on the same test split
    teacher.rename(tmp_path / "moved.pth")
    assert main(["evaluate", "--ckpt", str(ckpt)]) == 0
    evaluated = json.loads((_only(runs, "*-evaluate") / "metrics.json").read_text())["test"]
    for key in ("test/acc1", "test/acc5", "test/loss"):
        assert evaluated[key] == pytest.approx(tested[key], abs=1e-6), key
    # finetuned.pth holds the trained classifier: its logits equal the Lightning checkpoint's
    from tinymim.module import TinyMIMFinetune

    finetuned = torch.load(run / "finetuned.pth", weights_only=False)
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert finetuned["meta"]["arch"]["embed_dim"] == 64
    model = TinyMIMFinetune(student=ViTConfig(**finetuned["meta"]["arch"]), num_classes=10)
    model.model.load_state_dict(finetuned["model"])
    assert all(torch.equal(state[f"model.{k}"], v) for k, v in finetuned["model"].items())
    (tmp_path / "moved.pth").rename(teacher)
    assert main(["export", "--ckpt", str(teacher), "--out", str(tmp_path / "export")]) == 0
    assert (tmp_path / "export" / "student_timm.pth").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data.dataset=nope"], "data.dataset 'nope' is unknown"),
        (
            ["train", "--model.teacher.source=nope:x", "--trainer.fast_dev_run=true"],
            "teacher.source 'nope:x'",
        ),
        (["finetune", "--ckpt", "/no/such/student.pth"], "checkpoint /no/such/student.pth does not exist"),
        (["reproduce", "--variants", "relation,bogus"], "unknown 'bogus'"),
        (["pretrain-teacher", "--arch", "vit_gigantic"], "invalid choice"),
    ],
)
def test_user_errors_are_one_line_and_leave_no_run_folder(args, message, runs, isolated_cache, capsys):
    assert main(args) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1].startswith("tinymim: error: ") and message in err[-1], err
    assert "Traceback" not in "\n".join(err)
    assert not runs.exists() or not any(runs.iterdir()), "a failed run left a run folder"


def test_reproduce_shards_merge_to_the_whole_runs_tables(isolated_cache, tmp_path):
    """A 2-cell grid run whole and as two shards + --merge gives the same tables (records carry everything)."""
    grid = ["--datasets", "digits17", "--variants", "scratch,relation", "--seeds", "0", "--teacher-epochs", "1",
            "--student-epochs", "1", "--finetune-epochs", "1", "--threads", "1"]  # fmt: skip
    assert main(["reproduce", *grid, "--out", str(tmp_path / "whole")]) == 0
    for k in (1, 2):
        assert main(["reproduce", *grid, "--shard", f"{k}/2", "--out", str(tmp_path / f"shard{k}")]) == 0
        assert len(list((tmp_path / f"shard{k}" / "records").glob("*.json"))) == 1
    assert main(["reproduce", "--merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"),
                 "--out", str(tmp_path / "merged")]) == 0  # fmt: skip
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert set(whole["tables"]) == {"main", "margins", "losses"}
    assert merged["tables"] == whole["tables"]
    rows = whole["tables"]["main"]["rows"]
    assert [row[:2] for row in rows] == [["digits17", "20 labels/class"], ["digits17", "all labels"]]
    assert whole["seeds"] == [0]


@pytest.mark.parametrize("pool", ["avg", "token"])
def test_the_printed_export_hint_runs_in_timm_and_gives_the_students_features(tmp_path, capsys, pool):
    """Execute the exact snippet `tinymim export` prints (K → 10): every block, the adaptive last block's heads
    included, and the pooled features must equal the student's (float32, 4 blocks of width 384: 1e-5)."""
    config = ViTConfig(img_size=32, patch_size=4, embed_dim=384, depth=4, num_heads=6, last_heads=12)
    student = build_vit(config).eval()
    path = save_tinymim_checkpoint(tmp_path / "student.pth", student, config)
    assert main(["export", "--ckpt", str(path), "--pool", pool, "--out", str(tmp_path / "export")]) == 0
    printed = capsys.readouterr().out.splitlines()
    code = "\n".join(printed[printed.index("import timm") :])
    assert "num_heads=6" in code and "num_heads = 12" in code
    scope: dict = {}
    exec(code.replace("num_classes=K", "num_classes=10"), scope)  # the hint itself is under test
    model = scope["model"].eval()
    assert model.blocks[-1].attn.num_heads == 12 and model.blocks[0].attn.num_heads == 6
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours, theirs = (
            embed_tokens(student, images),
            model.norm_pre(model._pos_embed(model.patch_embed(images))),
        )
        for block_ours, block_theirs in zip(student.blocks, model.blocks, strict=True):
            ours, theirs = block_ours(ours), block_theirs(theirs)
            assert torch.allclose(ours, theirs, atol=1e-5)
        if pool == "token":  # the class token after the final norm, as timm's forward_head(pre_logits=True)
            assert torch.allclose(
                student.norm(ours)[:, 0], model.forward_head(model.norm(theirs), True), atol=1e-5
            )


def test_target_block_zero_is_an_error_not_the_default():
    from tinymim.teacher import TeacherConfig, resolve_teacher

    from paperlab_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"target_block=0 is outside 1\.\.6"):
        resolve_teacher(TeacherConfig(source="random", target_block=0), student_depth=4, img_size=32)


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


def test_bench_distill_one_step_writes_equal_fast_and_reference_losses(tmp_path):
    """`bench distill --steps 1`: the truncated fast step computes the reference step's loss (float32, one
    batch of 4: relative 1e-5)."""
    out = tmp_path / "bench"
    argv = ["bench", "distill", "--random-weights", "--steps", "1", "--warmup", "0", "--batch-size", "4",
            "--threads", "1", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    result = json.loads((out / "bench.json").read_text())
    assert result["steps"] == 1 and result["batch_size"] == 4 and result["speedup"] > 0
    assert result["loss_rel_diff"] < 1e-5 and result["loss"]["fast"] > 0
    assert set(result["memory"]) == {"fast", "reference"}


def test_reproduce_cells_vary_the_label_subset_and_optionally_the_teacher_with_the_seed(
    tmp_path, monkeypatch
):
    """Each seed fine-tunes on its own low-label subset (`--label-seed` pins one); `--teacher-per-seed` gives
    every seed its own MAE teacher, otherwise the seed-0 teacher serves all seeds."""
    from dataclasses import asdict

    from tinymim import reproduce as rep

    from paperlab_core.experiment import Cell

    calls: dict[str, list] = {"label": [], "teacher": []}

    def fake_finetune(dataset, init, epochs, per_class, seed, work, root, accelerator, label_seed=0):
        calls["label"].append((seed, per_class, label_seed))
        return {"acc1": 50.0, "final_train_loss": 1.0}

    def fake_teacher(dataset, epochs, folder, root, accelerator, seed=0):
        calls["teacher"].append(seed)
        return {"path": folder / f"t{seed}.pth", "losses": [2.0, 1.0], "seconds": 1.0}

    monkeypatch.setattr(rep, "finetune_stage", fake_finetune)
    monkeypatch.setattr(rep, "teacher_stage", fake_teacher)
    monkeypatch.setattr(rep, "distill_stage", lambda *a, **k: [2.0, 1.0])

    def run(variant, seed, **protocol):
        params = {"dataset": "digits17", "variant": variant, "seed": seed, "root": None,
                  "protocol": asdict(rep.Protocol(**protocol))}  # fmt: skip
        rep.run_cell(Cell(f"c{seed}", params), tmp_path, "cpu")

    run("scratch", 1)
    run("scratch", 2)
    run("scratch", 2, label_seed=0)
    low = [(seed, label) for seed, per_class, label in calls["label"] if per_class is not None]
    assert low == [(1, 1), (2, 2), (2, 0)]
    run("relation", 2)
    run("relation", 2, teacher_per_seed=True)
    assert calls["teacher"] == [0, 2]


def test_the_builtin_teacher_ships_with_the_package_and_is_checked(isolated_cache, tmp_path, monkeypatch):
    """With an empty cache the builtin teacher comes from package data (no pre-training); a copy that does not
    match SHA256SUMS.json is a one-line user error, not a silent rebuild."""
    import shutil

    from tinymim import pretrain
    from tinymim.pretrain import builtin_teacher_path

    from paperlab_core.errors import UserError

    shipped = builtin_teacher_path(allow_pretrain=False)
    assert shipped.parent.name == "teachers" and not isolated_cache.exists()
    corrupt = tmp_path / "pkg"
    shutil.copytree(shipped.parent, corrupt / "teachers")
    with (corrupt / "teachers" / shipped.name).open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0\1\2\3")
    monkeypatch.setattr(pretrain, "shipped_dir", lambda: corrupt / "teachers")
    with pytest.raises(UserError, match="does not match its checksum"):
        builtin_teacher_path(allow_pretrain=False)
