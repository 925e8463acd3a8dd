"""``robust-tickets`` command line: Lightning verbs plus the stage, attack, analysis and reproduce commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paperlab_core.cli import build_cli
from robust_tickets import __version__
from robust_tickets.data import TextDataModule
from robust_tickets.module import TicketModule


def _train(args: list[str]) -> int:
    return main(["train", *args])


def finetune_main(argv: list[str]) -> int:
    """stage 1 only: fine-tune the pre-trained model (train --model.method finetune)"""
    return _train(["--model.method", "finetune", *argv])


def search_main(argv: list[str]) -> int:
    """stage 2 only: learn robust masks on frozen fine-tuned weights (--finetuned CKPT)"""
    parser = argparse.ArgumentParser(prog="robust-tickets search", add_help=False)
    parser.add_argument("--finetuned", required=True, help="checkpoint written by `robust-tickets finetune`")
    known, rest = parser.parse_known_args(argv)
    return _train(["--model.method", "search", "--model.init_ckpt", known.finetuned, *rest])


def draw_main(argv: list[str]) -> int:
    """stage 3 only: draw the ticket globally, rewind to theta_0, retrain (--masks CKPT --sparsity S)"""
    parser = argparse.ArgumentParser(prog="robust-tickets draw", add_help=False)
    parser.add_argument("--masks", required=True, help="checkpoint written by `robust-tickets search`")
    parser.add_argument("--sparsity", type=float, default=None)
    parser.add_argument("--from", dest="draw_from", choices=["last", "best"], default=None)
    known, rest = parser.parse_known_args(argv)
    extra = ["--model.method", "draw", "--model.init_ckpt", known.masks]
    if known.sparsity is not None:
        extra += ["--model.sparsity", str(known.sparsity)]
    if known.draw_from:
        extra += ["--model.draw_from", known.draw_from]
    return _train([*extra, *rest])


def pipeline_main(argv: list[str]) -> int:
    """all three stages in one run: fine-tune -> adversarial mask search -> draw, rewind, retrain"""
    return _train(["--model.method", "robust", *argv])


def _load_for_attack(ckpt: str, data_overrides: dict) -> tuple[TicketModule, TextDataModule]:
    import torch

    if not Path(ckpt).is_file():
        raise SystemExit(f"robust-tickets: checkpoint {ckpt} does not exist")
    raw = torch.load(ckpt, map_location="cpu", weights_only=False)
    module = TicketModule.load_from_checkpoint(ckpt, map_location="cpu", attacks=[])
    import inspect

    allowed = set(inspect.signature(TextDataModule.__init__).parameters) - {"self"}
    saved = {k: v for k, v in raw.get("datamodule_hyper_parameters", {}).items() if k in allowed}
    dm_args = {**saved, **{k: v for k, v in data_overrides.items() if v}}
    dm = TextDataModule(**dm_args)
    dm.setup("test")
    return module, dm


def attack_main(argv: list[str]) -> int:
    """one offline attack on a checkpoint: per-example CSV, summary and perturbed texts"""
    from paperlab_core.logging import log, make_run_dir, write_metrics
    from paperlab_core.runtime import set_threads
    from robust_tickets.evaluate import (
        candidate_table,
        load_candidate_table,
        run_named_attack,
        write_attack_outputs,
    )
    from robust_tickets.models import load_pretrained

    parser = argparse.ArgumentParser(prog="robust-tickets attack", description=attack_main.__doc__)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument(
        "--attack", default="wordswap", help="wordswap | charswap | pgd | textattack:<recipe>"
    )
    parser.add_argument(
        "--n", type=int, default=None, help="attacked examples (default: the data's n_attack)"
    )
    parser.add_argument("--max-queries", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--parallel-examples", type=int, default=32)
    parser.add_argument("--pgd-eps-rel", type=float, default=0.05)
    parser.add_argument(
        "--sim-threshold", type=float, default=0.0,
        help="wordswap: drop candidates whose MiniLM sentence cosine to the original is below this (0 = off; "
        "the sst2-paper preset uses 0.8)",
    )  # fmt: skip
    parser.add_argument("--root", default=None, help="data root override")
    parser.add_argument("--table", default=None, help="candidate table JSON (from `synonyms build`)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.attack.startswith("textattack:"):
        from robust_tickets.textattack_adapter import run_textattack

        return run_textattack(args)
    module, dm = _load_for_attack(args.ckpt, {"n_attack": args.n, "root": args.root})
    table = None
    if args.attack == "wordswap":
        if args.table:
            table = load_candidate_table(args.table)
        else:
            emb = None
            if dm.task.synonyms is None:
                emb = (
                    load_pretrained(module.hparams.model_name, module.hparams.num_labels)
                    .get_input_embeddings()
                    .weight
                )
            table = candidate_table(dm.task, dm.tokenizer, emb)
    results, summary = run_named_attack(
        args.attack, module.net, dm.tokenizer, dm.attack_split(), table, args.max_queries, args.batch_size,
        args.parallel_examples, dm.max_len, args.pgd_eps_rel, sim_threshold=args.sim_threshold,
    )  # fmt: skip
    run_dir = make_run_dir("robust_tickets", f"attack-{args.attack}")
    write_attack_outputs(run_dir, args.attack, results, summary)
    write_metrics(run_dir, {"attack": {args.attack: summary}, "ckpt": args.ckpt})
    print(json.dumps({args.attack: summary}, indent=2))
    log(f"robust-tickets attack: outputs in {run_dir}")
    return 0


def synonyms_main(argv: list[str]) -> int:
    """build and cache the shared word-swap candidate table from the PRE-TRAINED embeddings or the lexicons"""
    from paperlab_core.logging import write_json_atomic
    from robust_tickets.attacks import table_hash
    from robust_tickets.data import load_task
    from robust_tickets.evaluate import candidate_table
    from robust_tickets.models import load_pretrained, load_tokenizer

    parser = argparse.ArgumentParser(prog="robust-tickets synonyms", description=synonyms_main.__doc__)
    parser.add_argument("action", choices=["build"])
    parser.add_argument("--source", choices=["embedding", "lexicon"], default="embedding")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--root", default=None)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--out", default="synonyms.json")
    args = parser.parse_args(argv)
    tok = load_tokenizer(args.model)
    task = load_task(args.dataset, args.root, tokenizer=tok)
    emb = None if args.source == "lexicon" else load_pretrained(args.model, 2).get_input_embeddings().weight
    table = candidate_table(task, tok, emb, args.source)
    write_json_atomic(args.out, table)
    print(f"{len(table)} words with candidates, sha256 {table_hash(table)} -> {args.out}")
    return 0


def ticket_stats_main(argv: list[str]) -> int:
    """per-layer and per-head sparsity of a ticket or mask checkpoint, R(m) and binary percentages"""
    from robust_tickets.analysis import compare_rankings, ticket_stats

    parser = argparse.ArgumentParser(
        prog="robust-tickets ticket-stats", description=ticket_stats_main.__doc__
    )
    parser.add_argument("--ckpt", required=True)
    parser.add_argument(
        "--sparsity", type=float, default=None, help="report the global draw of the scores at this sparsity"
    )
    parser.add_argument(
        "--compare", default=None, help="second mask checkpoint: score correlation and pruned-set overlap"
    )
    args = parser.parse_args(argv)
    module = TicketModule.load_from_checkpoint(args.ckpt, map_location="cpu", attacks=[])
    stats = ticket_stats(module, args.sparsity)
    if args.compare:
        other = TicketModule.load_from_checkpoint(args.compare, map_location="cpu", attacks=[])
        stats["compare"] = {
            "ckpt": args.compare,
            **compare_rankings(
                module.net.mask_scores, other.net.mask_scores, args.sparsity or module.hparams.sparsity
            ),
        }
    print(json.dumps(stats, indent=2))
    return 0


def bench_main(argv: list[str]) -> int:
    """throughput benchmarks (spec 7): `bench search` (mask-search steps/s) or `bench attack` (queries/s)"""
    from robust_tickets.bench import bench_cli

    return bench_cli(argv)


def data_main(argv: list[str]) -> int:
    """download a paper dataset (mr, sst2, agnews, imdb, qnli, mnli, qqp) in its native format: `data download NAME`"""
    from robust_tickets.download import SOURCES, fetch_dataset

    parser = argparse.ArgumentParser(prog="robust-tickets data", description=data_main.__doc__)
    parser.add_argument("action", choices=["download"])
    parser.add_argument("dataset", choices=sorted(SOURCES))
    parser.add_argument(
        "--root",
        default=None,
        help="target folder (default: $PAPERLAB_DATA or ~/.cache/paperlab/robust_tickets/NAME)",
    )
    args = parser.parse_args(argv)
    root = fetch_dataset(args.dataset, args.root)
    print(f"{args.dataset}: {root} (use --data.dataset {args.dataset} --data.root {root})")
    return 0


def reproduce_main(argv: list[str]) -> int:
    """the paper's key experiment at CPU scale: robust ticket vs dense/magnitude/random/wo_adv tickets"""
    from robust_tickets.reproduce import reproduce_cli

    return reproduce_cli(argv)


main = build_cli(
    "robust_tickets",
    TicketModule,
    TextDataModule,
    version=__version__,
    description="Robust lottery tickets for pre-trained language models (Zheng et al., ACL 2022)",
    commands={
        "finetune": finetune_main,
        "search": search_main,
        "draw": draw_main,
        "pipeline": pipeline_main,
        "attack": attack_main,
        "synonyms": synonyms_main,
        "data": data_main,
        "ticket-stats": ticket_stats_main,
        "bench": bench_main,
        "reproduce": reproduce_main,
    },
    trainer_defaults={"num_sanity_val_steps": 0},
    seed=42,
)
