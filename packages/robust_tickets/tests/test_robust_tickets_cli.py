"""Criterion 19 and the CLI: the stage verbs, the package verbs, reproduce (whole, sharded, merged) and bad-input
errors (in-process, tiny model)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from robust_tickets.attacks import table_hash
from robust_tickets.cli import REPRODUCE, main

from paperlab_core.verbs import build_parser

TINY = [
    "--model.model_name",
    "tiny-bert",
    "--data.n_train",
    "32",
    "--data.batch_size",
    "16",
    "--data.n_attack",
    "8",
]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
ONE_EPOCH = ["--model.epochs_finetune", "1", "--model.epochs_search", "1", "--model.epochs_retrain", "1"]
TINY_REPRODUCE = ["--preset", "synthetic", "--quick", "--model", "tiny-bert", "--data.n_train", "32"]


def _newest_run(prefix: str = "") -> Path:
    root = Path(os.environ["PAPERLAB_RUNS"]) / "robust_tickets"
    return max(
        (p for p in root.iterdir() if p.name.split("-", 2)[-1].startswith(prefix)),
        key=lambda p: p.stat().st_mtime,
    )


def _resolve(*argv: str) -> dict:
    from robust_tickets.reproduce import resolve_config

    return resolve_config(build_parser("robust-tickets reproduce", REPRODUCE).parse_args(list(argv)))


def _records(folder: Path) -> dict[str, dict]:
    """``{row: result}`` of a one-seed reproduce folder (from its results.json)."""
    data = json.loads((folder / "results.json").read_text())
    return {r["params"]["row"]: r["result"] for r in data["records"]}


def test_help_and_version(capsys):
    import robust_tickets

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in (
        "train",
        "finetune",
        "search",
        "draw",
        "pipeline",
        "attack",
        "reproduce",
        "bench",
        "ticket-stats",
    ):
        assert verb in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith(f"robust-tickets {robust_tickets.__version__} ")


def test_literal_choices_equal_the_registries():
    """cli.py repeats the heavy modules' registries as literals (so --help imports nothing): they must agree."""
    from robust_tickets import cli, data, download, evaluate, reproduce, textattack_adapter

    assert cli.DATASETS == data.DATASETS
    assert cli.DOWNLOADS == tuple(sorted(download.SOURCES))
    assert cli.ATTACKS == evaluate.ATTACKS
    assert cli.TEXTATTACK_RECIPES == tuple(textattack_adapter.RECIPES)
    assert cli.PRESETS == tuple(reproduce.PRESETS)
    assert cli.METHODS == reproduce.REPRODUCE_METHODS


def test_print_config_round_trip(tmp_path, capsys):
    assert main(["train", "--print_config", "--model.model_name", "tiny-bert"]) == 0
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(capsys.readouterr().out)
    assert "legacy_freelb_average" in cfg.read_text()
    assert main(["train", "--config", str(cfg), "--trainer.fast_dev_run=true", *QUIET]) == 0


def test_stage_commands_chain(capsys):
    common = [*TINY, *ONE_EPOCH, *QUIET, "--model.attacks", "[]"]
    # official_code sets model.method robust: the stage verb's own method must still win
    assert main(["finetune", "--config", "official_code", *common, "--run_name", "ft"]) == 0
    ft_run = _newest_run("ft")
    assert set(json.loads((ft_run / "metrics.json").read_text())["budget"]) == {"finetune"}
    ft = ft_run / "checkpoints" / "last.ckpt"
    assert main(["search", "--finetuned", str(ft), *common, "--run_name", "se"]) == 0
    se = _newest_run("se")
    history = json.loads((se / "metrics.json").read_text())["history"]
    assert history[-1]["phase"] == "search" and "l0" in history[-1]
    assert main(["draw", "--masks", str(se / "checkpoints" / "last.ckpt"), "--sparsity", "0.4", "--from", "best",
                 *common, "--run_name", "dr"]) == 0  # fmt: skip
    dr = _newest_run("dr")
    metrics = json.loads((dr / "metrics.json").read_text())
    assert metrics["ticket_sparsity"] == pytest.approx(0.4, abs=2e-5)
    assert "test_acc" in metrics["final"]
    ticket = str(dr / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    assert main(["ticket-stats", "--ckpt", ticket]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["sparsity"] == pytest.approx(0.4, abs=2e-5) and "layer0" in stats["per_layer_sparsity"]
    masks = str(se / "checkpoints" / "last.ckpt")
    assert main(["ticket-stats", "--ckpt", masks, "--sparsity", "0.25", "--compare", masks]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["sparsity"] == pytest.approx(0.25, abs=2e-5) and stats["compare"]["pruned_overlap"] == 1.0
    # evaluate restores the checkpoint's configuration (tiny-bert, 8 attacked) with no other flag but the attack
    assert main(["evaluate", "--ckpt", ticket, *QUIET, "--model.attacks", "[pgd]", "--run_name", "ev"]) == 0
    evaluated = json.loads((_newest_run("ev") / "metrics.json").read_text())
    assert "test_acc" in evaluated["test"] and evaluated["evaluate"]["pgd"]["n"] == 8
    assert evaluated["ticket_sparsity"] == pytest.approx(0.4, abs=2e-5)  # the binary ticket mode was restored
    for attack in ("wordswap", "charswap", "pgd"):
        extra = ["--sim-threshold", "0.9"] if attack == "wordswap" else []
        argv = ["attack", "--ckpt", ticket, "--attack", attack, "--data.n_attack", "6", "--max-queries", "50"]
        assert main([*argv, *extra]) == 0
        run = _newest_run("attack")
        assert (run / f"attack_{attack}.csv").is_file() and (run / f"attack_{attack}_perturbed.txt").is_file()
        summary = json.loads((run / f"attack_{attack}_summary.json").read_text())
        assert summary["n"] == 6 and 0 <= summary["aua"] <= summary["clean"] <= 100
        assert json.loads((run / "metrics.json").read_text())["attack"][attack]["n"] == 6
        if attack == "wordswap":
            assert summary["sim_threshold"] == 0.9


def test_bad_inputs_are_one_line_errors(tmp_path, monkeypatch, capsys):
    from robust_tickets.module import TicketModule
    from transformers import BertConfig, BertForSequenceClassification

    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        TicketModule(model_name="no-such-model")
    with pytest.raises(ValueError, match="sparsity"):
        TicketModule(model_name="tiny-bert", sparsity=1.0)
    with pytest.raises(ValueError, match="unknown method"):
        TicketModule(model_name="tiny-bert", method="magic")
    with pytest.raises(ValueError, match="init_ckpt"):
        TicketModule(model_name="tiny-bert", method="search")
    small = tmp_path / "small-bert"
    BertForSequenceClassification(
        BertConfig(
            vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    ).save_pretrained(small)
    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLAB_RUNS", str(runs))
    missing = str(tmp_path / "missing.ckpt")
    cases = [
        (["train", "--model.model_name", str(small), "--trainer.fast_dev_run=true", *QUIET], 1,
         "tokenizer/model mismatch"),
        (["search", "--model.model_name", "tiny-bert", *QUIET], 1, "--finetuned"),
        (["draw", "--masks", missing, "--model.model_name", "tiny-bert", *QUIET], 1, "does not exist"),
        (["train", "--data.dataset", "nope", "--model.model_name", "tiny-bert"], 1, "unknown dataset 'nope'"),
        (["attack", "--ckpt", missing], 2, "does not exist"),
        (["attack", "--ckpt", str(small / "config.json")], 1, "cannot be read"),
        (["data", "download", "nope"], 2, "invalid choice"),
        (["reproduce", *TINY_REPRODUCE, "--methods", "robust,lth"], 2, "unknown 'lth'"),
        (["reproduce", *TINY_REPRODUCE, "--methods", "reinit"], 1, "reuse the robust search"),
        (["reproduce", *TINY_REPRODUCE, "--attacks", "pgd"], 1, "not in the preset's"),
        (["reproduce", *TINY_REPRODUCE, "--sparsity", "1.0"], 1, r"--sparsity must be in [0, 1), got 1.0"),
        (["ticket-stats", "--ckpt", missing], 2, "does not exist"),
    ]  # fmt: skip
    for argv, code, message in cases:
        capsys.readouterr()
        assert main(argv) == code, argv
        err = [
            line for line in capsys.readouterr().err.splitlines() if line.startswith("robust-tickets: error:")
        ]
        assert len(err) == 1 and message in err[0], (argv, err)
    assert not list(runs.rglob("*.json")), "a failed run left a result behind"
    assert not [p for p in runs.glob("robust_tickets/*") if any(p.iterdir())], (
        "a failed run left a run folder"
    )


def test_reproduce_on_tiny_model(tmp_path):
    out = tmp_path / "repro"
    methods = ["--methods", "robust,wo_adv,magnitude,imp,random,no_structure,freelb"]
    table = {"good": ["great", "fine"], "movie": ["film"]}
    (tmp_path / "table.json").write_text(json.dumps(table))
    extra = ["--data.n_attack", "6", "--max-queries", "30", "--table", str(tmp_path / "table.json")]
    assert main(["reproduce", *TINY_REPRODUCE, *methods, *extra, "--out", str(out)]) == 0
    rows = _records(out)
    assert {r["wordswap"]["table_sha256"] for r in rows.values()} == {table_hash(table)}  # --table is used
    # freelb is off in the synthetic/--quick defaults but runs when --methods names it
    assert set(rows) == {"dense", "robust", "wo_adv", "magnitude", "imp", "random", "no_structure", "freelb"}
    assert rows["no_structure"]["sparsity"] == 0.0  # Table 4: full model, pruned entries re-initialised
    assert rows["no_structure"]["steps"] == rows["robust"]["steps"]  # same search, same retrain budget
    assert rows["robust"]["steps"] == 3 * rows["dense"]["steps"]  # stage 1 + search + retrain, 1 epoch each
    assert rows["magnitude"]["steps"] == 2 * rows["dense"]["steps"]  # stage 1 + retrain
    assert rows["imp"]["steps"] == 5 * rows["dense"]["steps"]  # stage 1 + rounds 2-4 (10/19/27.1 %) + retrain
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [42] and results["command"].startswith("robust-tickets reproduce")
    best = max(rows[m]["wordswap"]["aua"] for m in ("wo_adv", "magnitude", "imp", "random"))
    assert any(f"best same-sparsity ticket {best:.1f} " in c for c in results["checks"])
    text = (out / "results.md").read_text()
    assert "| robust | 30% |" in text and "wordswap Aua%" in text
    assert not list(out.rglob("*.ckpt")) and not (out / "stages").exists()


def test_reproduce_shards_and_merge_give_the_whole_runs_tables(tmp_path):
    """Two shards merged = one whole run, table for table. Shard 2 has no stage-1 model of its own to reuse and
    trains it again: the same seed must give the same weights, and so the same robust ticket."""
    import torch

    grid = [*TINY_REPRODUCE, "--data.n_attack", "5", "--max-queries", "20", "--methods", "robust,random"]
    grid += ["--keep-ckpts"]
    assert main(["reproduce", *grid, "--out", str(tmp_path / "whole")]) == 0
    for k in (1, 2):
        assert main(["reproduce", *grid, "--shard", f"{k}/2", "--out", str(tmp_path / f"shard{k}")]) == 0
        assert not (tmp_path / f"shard{k}" / "results.json").exists()
    assert len(list((tmp_path / "shard1" / "records").glob("*.json"))) == 2  # dense, random
    assert len(list((tmp_path / "shard2" / "records").glob("*.json"))) == 1  # robust (with its own stage 1)
    merged = tmp_path / "merged"
    assert (
        main(
            ["reproduce", "--merge", str(tmp_path / "shard1"), str(tmp_path / "shard2"), "--out", str(merged)]
        )
        == 0
    )
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    parts = json.loads((merged / "results.json").read_text())
    for name in ("main", "per_seed"):
        assert parts["tables"][name] == whole["tables"][name], name
    assert parts["checks"] == whole["checks"]
    budget = [row[:3] for row in whole["tables"]["budget"]["rows"]]  # steps and passes; wall time differs
    assert [row[:3] for row in parts["tables"]["budget"]["rows"]] == budget
    for name in ("finetune-seed42.ckpt", "ticket-robust-seed42.ckpt"):
        ours = torch.load(tmp_path / "whole" / "stages" / name, weights_only=False)["state_dict"]
        theirs = torch.load(tmp_path / "shard2" / "stages" / name, weights_only=False)["state_dict"]
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), name


def test_synonyms_build_lexicon_table(tmp_path, capsys):
    from robust_tickets.evaluate import load_candidate_table

    assert main(["synonyms", "build", "--source", "lexicon", "--out", str(tmp_path)]) == 0
    table = load_candidate_table(tmp_path / "synonyms.json")
    assert len(table) > 1000 and f"sha256 {table_hash(table)}" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="synonyms build"):
        load_candidate_table(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: not a JSON candidate table"):
        load_candidate_table(tmp_path / "bad.json")
    (tmp_path / "shape.json").write_text(json.dumps({"good": "great"}))
    with pytest.raises(ValueError, match="shape.json: expected a JSON object mapping each word"):
        load_candidate_table(tmp_path / "shape.json")


@pytest.mark.parametrize(
    "preset",
    ["default", "synthetic", "official_code", "mr-minilm", "tiny"]
    + [f"{d}-paper" for d in ("sst2", "imdb", "agnews", "qnli", "mnli", "qqp")],
)
def test_presets_only_use_known_fields(preset):
    import inspect

    import robust_tickets
    import yaml
    from robust_tickets.data import TextDataModule
    from robust_tickets.module import TicketModule

    cfg = yaml.safe_load((Path(robust_tickets.__file__).parent / "configs" / f"{preset}.yaml").read_text())
    fields = {
        "model": set(inspect.signature(TicketModule.__init__).parameters),
        "data": set(inspect.signature(TextDataModule.__init__).parameters),
    }
    for section, values in cfg.items():
        if section in fields:
            assert set(values) <= fields[section], (preset, set(values) - fields[section])


def test_reproduce_merge_averages_single_seed_records(tmp_path):
    from robust_tickets.reproduce import config_id

    cfg = {**_resolve("--preset", "synthetic", "--methods", "robust,random", "--no-long"), "n_train": 8}

    def row(clean, aua, sparsity):
        return {"clean_test_acc": clean, "wordswap": {"aua": aua, "suc": 50.0, "queries": 10.0},
                "sparsity": sparsity, "steps": 1, "passes": 1, "train_wall_s": 1.0}  # fmt: skip

    def write(folder: Path, config: dict, seed: int, rows: dict) -> str:
        (folder / "records").mkdir(parents=True)
        for name, result in rows.items():
            key = f"{config_id(config)}/seed{seed}/{name}"
            record = {"key": key, "params": {"config": config, "seed": seed, "row": name}, "result": result}
            (folder / "records" / f"{name}.json").write_text(json.dumps(record))
        return str(folder)

    runs = []
    for seed, (dense, robust, rand) in zip(
        (42, 43), [((80, 10), (79, 30), (70, 20)), ((82, 12), (78, 34), (72, 26))], strict=True
    ):
        rows = {"dense": row(*dense, 0.0), "robust": row(*robust, 0.3), "random": row(*rand, 0.3)}
        runs.append(write(tmp_path / f"s{seed}", cfg, seed, rows))
    assert main(["reproduce", "--merge", *runs, "--out", str(tmp_path / "m")]) == 0
    text = (tmp_path / "m" / "results.md").read_text()
    assert "| robust | 30% | 78.5 ± 0.7 | 32.0 ± 2.8 |" in text
    assert "robust Aua 32.0 vs best same-sparsity ticket 23.0 (+5 needed): PASS" in text
    assert "robust clean 78.5 vs dense 81.0 (within 3): PASS" in text
    assert json.loads((tmp_path / "m" / "results.json").read_text())["seeds"] == [42, 43]
    other = write(tmp_path / "other", {**cfg, "n_train": 9}, 44, {"dense": row(80, 10, 0.0)})
    assert main(["reproduce", "--merge", runs[0], other, "--out", str(tmp_path / "m2")]) == 1


@pytest.mark.data
def test_reproduce_mr_quick_path_on_tiny_model(shared_data, tmp_path):
    """The `reproduce --preset mr-minilm --quick` path on the real MR files (loader, split, embedding-neighbour
    table, attacks, claim checks) with the tiny model: seconds instead of the MiniLM run's minutes (below)."""
    out = tmp_path / "mr-quick"
    argv = [
        "--preset",
        "mr-minilm",
        "--quick",
        "--model",
        "tiny-bert",
        "--data.n_train",
        "32",
        "--data.n_attack",
        "6",
    ]
    assert main(["reproduce", *argv, "--max-queries", "30", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["dataset"] == "mr" and results["config"]["attacks"] == ["wordswap"]
    rows = _records(out)
    assert set(rows) == {"dense", "robust", "wo_adv", "magnitude", "random"}
    for name, row in rows.items():
        assert row["wordswap"]["n"] == 6, name
        assert 0 <= row["wordswap"]["aua"] <= row["wordswap"]["clean"] <= 100
        assert (
            row["wordswap"]["table_sha256"] == rows["dense"]["wordswap"]["table_sha256"]
        )  # one shared table
    assert rows["robust"]["passes"] > rows["wo_adv"]["passes"] == rows["robust"]["steps"]  # s = 2 vs s = 1
    assert len(results["checks"]) == 3 and "| robust | 30% |" in (out / "results.md").read_text()


@pytest.mark.data
@pytest.mark.slow
def test_reproduce_mr_quick_on_minilm(shared_data, tmp_path):
    """Criterion 16: `reproduce --preset mr-minilm --quick` (MiniLM on the real MR files), about 4 min on one
    thread: opt in with `-m slow` (the tiny-model test above covers the same path in seconds)."""
    out = tmp_path / "mr-quick"
    assert main(["reproduce", "--preset", "mr-minilm", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["n_train"] == 256 and results["config"]["attacks"] == ["wordswap"]
    rows = _records(out)
    assert set(rows) == {"dense", "robust", "wo_adv", "magnitude", "random"}
    for name, row in rows.items():
        assert row["wordswap"]["n"] == 50, name
        assert 0 <= row["wordswap"]["aua"] <= row["wordswap"]["clean"] <= 100
        assert row["wordswap"]["table_sha256"] == rows["dense"]["wordswap"]["table_sha256"]
    assert rows["robust"]["passes"] > rows["wo_adv"]["passes"] == rows["robust"]["steps"]
    assert len(results["checks"]) == 3 and "| robust | 30% |" in (out / "results.md").read_text()


def test_bench_search_cpu_plumbing(tmp_path, capsys):
    """`bench search` writes both step rates, their ratio and the CPU op profile; CUDA without a GPU is refused."""
    import torch

    args = ["bench", "search", "--model", "tiny-bert", "--batch", "4", "--length", "16", "--steps", "2"]
    assert main([*args, "--warmup", "0", "--threads", "1", "--device", "cpu", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "bench.json").read_text())
    assert (
        result["device"] == "cpu" and len(result["step_s"]["ours"]) == len(result["step_s"]["official"]) == 2
    )
    assert result["ratio"] == pytest.approx(result["ours_steps_per_s"] / result["official_steps_per_s"])
    assert 0 < result["profile"]["ours"]["matmul_share"] < 1 and "peak_memory_mib" not in result
    prof = result["profile"]["official"]
    for op in prof["top_ops"]:  # absolute self-CPU ms per op, consistent with its share of the step
        assert op["ms"] == pytest.approx(op["share"] * prof["step_ms"], rel=1e-6)
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main([*args, "--device", "cuda", "--out", str(tmp_path / "gpu")]) == 1
        assert "CUDA is not available" in capsys.readouterr().err


def test_reproduce_adv_scale_reaches_the_modules(tmp_path, monkeypatch):
    """`--adv-scale S` multiplies Table 6's epsilon_0 (0.05) and eta (0.03) of every trained module."""
    import robust_tickets.module as module_mod

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(module_mod, "TicketModule", fake)
    args = [*TINY_REPRODUCE, "--data.n_attack", "4"]
    assert main(["reproduce", *args, "--adv-scale", "2", "--out", str(tmp_path / "r")]) == 1
    assert seen["adv_init_mag"] == pytest.approx(0.1) and seen["adv_lr"] == pytest.approx(0.06)


# The paper's Table 6 rows (eta, mask lr, lambda, epsilon_0, s) and Tables 1-2 sparsities, typed from the spec (5.4)
PAPER_TABLE6 = {
    "sst2": (0.03, 0.1, 0.5, 0.05, 5, 0.3),
    "agnews": (0.03, 0.05, 0.5, 0.05, 5, 0.4),
    "imdb": (0.03, 0.1, 0.5, 0.05, 5, 0.2),
    "qqp": (0.04, 0.05, 0.1, 0.05, 3, 0.3),
    "qnli": (0.04, 0.05, 0.1, 0.05, 3, 0.3),
    "mnli": (0.2, 0.1, 0.1, 0.05, 2, 0.3),
}


@pytest.mark.parametrize("dataset", sorted(PAPER_TABLE6))
def test_paper_presets_follow_table6_and_agree_with_their_train_configs(dataset):
    """`reproduce --preset <d>-paper` and `train --config <d>-paper` (one name per preset) carry the paper's row
    for that dataset."""
    import robust_tickets
    import yaml

    cfg = _resolve("--preset", f"{dataset}-paper")
    eta, mask_lr, lam, eps0, steps, sparsity = PAPER_TABLE6[dataset]
    assert (cfg["adv_lr"], cfg["mask_lr"], cfg["lambda_amp"], cfg["adv_init_mag"]) == (
        eta,
        mask_lr,
        lam,
        eps0,
    )
    assert (cfg["adv_steps"], cfg["sparsity"], cfg["epochs"], cfg["epochs_search"]) == (
        steps,
        sparsity,
        3,
        20,
    )
    assert cfg["model"] == "bert-base-uncased" and cfg["dataset"] == dataset and cfg["n_train"] is None
    assert cfg["max_len"] == (256 if dataset in ("imdb", "agnews") else 128)
    assert cfg["n_attack"] == {"sst2": 872, "imdb": 500}.get(dataset, 1000)  # paper App. B.2
    assert "imp" in cfg["methods"] and "freelb" in cfg["methods"] and cfg["long"]
    path = Path(robust_tickets.__file__).parent / "configs" / f"{dataset}-paper.yaml"
    yml = yaml.safe_load(path.read_text())
    model, data = yml["model"], yml["data"]
    for key in ("adv_steps", "mask_lr", "lambda_amp", "sparsity", "lr"):
        assert model[key] == cfg[key], (dataset, key)
    assert model.get("adv_lr", 0.03) == eta and model.get("adv_init_mag", 0.05) == eps0
    assert model.get("attack_max_queries", 500) == cfg["max_queries"]
    assert (model["epochs_finetune"], model["epochs_search"], model["epochs_retrain"]) == (3, 20, 3)
    assert model.get("num_labels", 2) == {"agnews": 4, "mnli": 3}.get(dataset, 2)
    assert (data["dataset"], data["max_len"], data["n_attack"]) == (dataset, cfg["max_len"], cfg["n_attack"])


def test_paper_quick_is_the_gpu_smoke_and_sparsity_is_validated():
    """Spec 5.3: `--quick` on a paper preset = 10 % of train, 2 search epochs, 200 attacked; CPU presets keep theirs."""
    from paperlab_core.errors import ConfigError

    quick = _resolve("--preset", "sst2-paper", "--quick")
    assert (quick["n_train"], quick["epochs_search"], quick["n_attack"], quick["n_charswap"]) == (
        6735,
        2,
        200,
        200,
    )
    assert quick["epochs"] == 3 and not quick["long"] and quick["attacks"] == ["wordswap", "charswap", "pgd"]
    assert (
        _resolve("--preset", "agnews-paper", "--quick")["n_train"] == 10800
    )  # 10 % of the 108,000 train rows
    cpu = _resolve("--preset", "mr-minilm", "--quick")
    assert (cpu["n_train"], cpu["epochs"], cpu["attacks"]) == (256, 1, ["wordswap"])
    assert _resolve("--preset", "imdb-paper", "--sparsity", "0.3")["sparsity"] == 0.3
    assert _resolve("--preset", "mr-minilm")["sparsity"] == 0.3
    assert _resolve()["preset"] == "synthetic"  # the embedded task: `reproduce --quick` runs offline anywhere
    with pytest.raises(ConfigError, match=r"--sparsity must be in \[0, 1\), got 1.0"):
        _resolve("--preset", "imdb-paper", "--sparsity", "1.0")


def test_agnews_paper_preset_runs_end_to_end_on_a_fixture(tmp_path, monkeypatch):
    """The 4-class agnews-paper preset on native-format CSVs with the tiny model: its Table 6 row reaches every
    module, the ticket has the preset's 40 % sparsity, and pgd attacks the same sampled attack set as wordswap."""
    import robust_tickets.module as module_mod

    words = {1: "election vote", 2: "match goal", 3: "market stock", 4: "chip software"}
    for name, n in (("train.csv", 48), ("test.csv", 16)):
        rows = [
            f'"{c}","{words[c]} title {i}","the {words[c]} report number {i}"'
            for i in range(n)
            for c in [i % 4 + 1]
        ]
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    seen: list[dict] = []
    real = module_mod.TicketModule

    def spy(**kwargs):
        seen.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(module_mod, "TicketModule", spy)
    (tmp_path / "table.json").write_text(json.dumps({"market": ["stock"], "goal": ["match"]}))
    out = tmp_path / "run"
    argv = ["reproduce", "--preset", "agnews-paper", "--quick", "--model", "tiny-bert", "--data.root", str(tmp_path),
            "--data.n_train", "32", "--data.n_attack", "5", "--epochs", "1", "--epochs-search", "1",
            "--methods", "robust", "--attacks", "wordswap,pgd", "--sim-threshold", "0", "--max-queries", "20",
            "--table", str(tmp_path / "table.json"), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert [k["method"] for k in seen] == ["finetune", "search", "draw"]
    for kwargs in seen:
        assert kwargs["num_labels"] == 4 and kwargs["sparsity"] == 0.4 and kwargs["mask_lr"] == 0.05
        assert (kwargs["adv_lr"], kwargs["adv_steps"], kwargs["lambda_amp"]) == (0.03, 5, 0.5)
    rows = _records(out)
    assert rows["robust"]["sparsity"] == 0.4 and "| robust | 40% |" in (out / "results.md").read_text()
    assert rows["robust"]["pgd"]["n"] == rows["robust"]["wordswap"]["n"] == 5


def test_synonyms_sweep_on_an_mr_checkpoint(tmp_path):
    """`synonyms sweep`: one record per (threshold, subwords) cell with the table's coverage and the wordswap
    summary on the checkpoint's attack set, and the table rendered from the records."""
    root = tmp_path / "mr"
    root.mkdir()
    (root / "rt-polarity.pos").write_text("".join(f"a good and pretentious film {i}\n" for i in range(800)))
    (root / "rt-polarity.neg").write_text("".join(f"a dull and contrived story {i}\n" for i in range(800)))
    data = ["--data.dataset", "mr", "--data.root", str(root)]
    assert (
        main(["finetune", *TINY, *ONE_EPOCH, *QUIET, *data, "--model.attacks", "[]", "--run_name", "mrft"])
        == 0
    )
    ckpt = _newest_run("mrft") / "checkpoints" / "last.ckpt"
    out = tmp_path / "sweep"
    argv = ["synonyms", "sweep", "--ckpt", str(ckpt), "--min-cos", "0.3,0.2", "--max-queries", "30"]
    assert main([*argv, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    records = {r["key"]: r["result"] for r in results["records"]}
    assert set(records) == {"cos0.3-words", "cos0.3-subwords", "cos0.2-words", "cos0.2-subwords"}
    for rec in records.values():
        assert rec["wordswap"]["n"] == 8
        assert rec["test"]["words_per_sentence"] == pytest.approx(6.0)  # "a good and pretentious film 7"
    # lowering the threshold or adding multi-piece words never removes candidates
    words = {k: r["test"]["words_with_candidates"] for k, r in records.items()}
    assert (
        words["cos0.2-words"] >= words["cos0.3-words"] and words["cos0.3-subwords"] >= words["cos0.3-words"]
    )
    rows = results["tables"]["main"]["rows"]
    assert [r[:2] for r in rows] == [[0.3, "no"], [0.3, "yes"], [0.2, "no"], [0.2, "yes"]]
    # `synonyms build` with the same settings writes the table the sweep measured
    build = ["synonyms", "build", *data, "--model", "tiny-bert", "--min-cos", "0.2", "--subwords", "yes"]
    assert main([*build, "--out", str(tmp_path / "syn")]) == 0
    table = json.loads((tmp_path / "syn" / "synonyms.json").read_text())
    assert len(table) == words["cos0.2-subwords"] and "pretentious" in table  # pre ##ten ##tious


def test_every_reproduce_preset_is_a_train_config_of_the_same_name():
    """One preset name across verbs: each `reproduce --preset P` is also `train --config P`."""
    from robust_tickets.reproduce import PRESETS

    from paperlab_core.cli import list_presets

    names = set(list_presets("robust_tickets"))
    assert set(PRESETS) <= names
    assert not {n for n in names if "_paper" in n or n in {"paper", "mr_minilm"}}


def test_reproduce_resume_reruns_cells_of_another_table(tmp_path, monkeypatch):
    """A resumed reproduce reuses a record only when its --table (by content) is the same: the settings."""
    import robust_tickets.data
    import robust_tickets.reproduce as reproduce

    calls: list[str] = []

    class FakeData:
        def __init__(self, **kwargs):
            pass

        def setup(self, stage):
            pass

    class FakeRunner:
        def __init__(self, cfg, dm, table, folder, seed, accelerator="cpu"):
            self.table = table

        def row(self, name):
            calls.append(name)
            return {"table": self.table}

    monkeypatch.setattr(robust_tickets.data, "TextDataModule", FakeData)
    monkeypatch.setattr(reproduce, "Runner", FakeRunner)
    monkeypatch.setattr(reproduce, "build_table", lambda dm, model: {"built": ["in", "memory"]})
    monkeypatch.setattr(reproduce, "tables", lambda records: {})
    monkeypatch.setattr(reproduce, "curve_plot", lambda folder: None)
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"good": ["great"]}))
    out = tmp_path / "repro"
    argv = ["reproduce", *TINY_REPRODUCE, "--methods", "robust", "--no-long", "--out", str(out)]
    assert main([*argv, "--table", str(table)]) == 0 and calls == ["dense", "robust"]
    record = json.loads(next((out / "records").glob("*_robust.json")).read_text())
    assert record["settings"] == {"table_sha256": table_hash({"good": ["great"]})}
    assert main([*argv, "--table", str(table)]) == 0 and len(calls) == 2  # the same table: records reused
    table.write_text(json.dumps({"good": ["fine"]}))  # same file, other candidates: re-run
    assert main([*argv, "--table", str(table)]) == 0 and calls[2:] == ["dense", "robust"]
    assert main(argv) == 0 and calls[4:] == ["dense", "robust"]  # the built-in table: re-run
    assert main(argv) == 0 and len(calls) == 6
