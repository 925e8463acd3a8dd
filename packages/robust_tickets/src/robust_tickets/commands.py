"""The package verbs besides ``train``/``evaluate``/``reproduce``: ``attack``, ``synonyms build``,
``data download``, ``ticket-stats`` (and ``bench``, in :mod:`robust_tickets.bench`).

Each is ``function(args, run)`` for :mod:`paperlab_core.verbs`; the options are declared in ``cli.py``.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path
from typing import Any

from paperlab_core.errors import ConfigError, UserError
from paperlab_core.verbs import Run


# ------------------------------------------------------------------------------------------- checkpoints
def load_module(ckpt: str | Path, device: Any = None) -> Any:
    """The TicketModule of a checkpoint written by ``train`` / a stage verb (attacks off), on ``device``."""
    from robust_tickets.module import TicketModule

    try:
        module = TicketModule.load_from_checkpoint(str(ckpt), map_location="cpu", attacks=[])
    except UserError:
        raise
    except Exception as exc:  # not a checkpoint, or one of another model
        raise UserError(
            f"checkpoint {ckpt} cannot be read as a robust-tickets checkpoint ({type(exc).__name__}: "
            f"{str(exc)[:200]})"
        ) from None
    return module.to(device) if device is not None else module


def data_config(ckpt: str | Path) -> dict[str, Any]:
    """The data configuration a checkpoint was trained with (paperlab's stored config, else Lightning's
    ``datamodule_hyper_parameters``), restricted to :class:`~robust_tickets.data.TextDataModule`'s arguments."""
    import torch

    from robust_tickets.data import TextDataModule

    raw = torch.load(str(ckpt), map_location="cpu", weights_only=False, mmap=True)
    stored = (raw.get("paperlab") or {}).get("config", {}).get("data") or raw.get(
        "datamodule_hyper_parameters", {}
    )
    allowed = set(inspect.signature(TextDataModule.__init__).parameters) - {"self"}
    return {k: v for k, v in (stored or {}).items() if k in allowed}


def load_for_attack(ckpt: str | Path, overrides: dict[str, Any], device: Any = None) -> tuple[Any, Any]:
    """(module, datamodule set up for testing) of a checkpoint; ``overrides`` that are not None win over the
    stored data configuration."""
    from robust_tickets.data import TextDataModule

    module = load_module(ckpt, device)
    dm = TextDataModule(**{**data_config(ckpt), **{k: v for k, v in overrides.items() if v is not None}})
    dm.setup("test")
    return module, dm


# ------------------------------------------------------------------------------------------- verbs
def attack(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """One offline attack on a checkpoint: per-example CSV, summary JSON and perturbed texts in the run folder."""
    from robust_tickets.evaluate import (
        candidate_table,
        load_candidate_table,
        run_named_attack,
        write_attack_outputs,
    )
    from robust_tickets.models import load_pretrained

    overrides = {
        "n_attack": args.data_n_attack,
        "root": None if args.data_root is None else str(args.data_root),
    }
    if args.attack.startswith("textattack:"):
        from robust_tickets.textattack_adapter import run_textattack

        module, dm = load_for_attack(args.ckpt, overrides, run.device)
        return run_textattack(args.attack.split(":", 1)[1], module, dm, args.max_queries)
    module, dm = load_for_attack(args.ckpt, overrides, run.device)
    table = None
    if args.attack == "wordswap":
        if args.table:
            table = load_candidate_table(args.table)
        else:
            emb = None
            if dm.task.synonyms is None:
                pretrained = load_pretrained(module.hparams.model_name, module.hparams.num_labels)
                emb = pretrained.get_input_embeddings().weight
            table = candidate_table(dm.task, dm.tokenizer, emb)
    results, summary = run_named_attack(
        args.attack, module.net, dm.tokenizer, dm.attack_split(), table, args.max_queries, args.batch_size,
        args.parallel_examples, dm.max_len, args.pgd_eps_rel, seed=args.seed, sim_threshold=args.sim_threshold,
    )  # fmt: skip
    write_attack_outputs(run.dir, args.attack, results, summary)
    print(json.dumps({args.attack: summary}, indent=2))
    return {"attack": {args.attack: summary}, "ckpt": str(args.ckpt)}


def synonyms_build(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Build the shared word-swap candidate table (pre-trained embeddings or the lexicons) as ``synonyms.json``."""
    from robust_tickets.attacks import table_hash
    from robust_tickets.data import load_task
    from robust_tickets.evaluate import candidate_table
    from robust_tickets.models import load_pretrained, load_tokenizer

    tok = load_tokenizer(args.model)
    root = None if args.data_root is None else str(args.data_root)
    task = load_task(args.data_dataset, root, tokenizer=tok)
    emb = None if args.source == "lexicon" else load_pretrained(args.model, 2).get_input_embeddings().weight
    settings: dict[str, Any] = {}
    if args.min_cos is not None:
        settings["min_cos"] = args.min_cos
    if args.subwords is not None:
        settings["subwords"] = args.subwords == "yes"
    table = candidate_table(task, tok, emb, args.source, **settings)
    path = run.write_json("synonyms.json", table)
    digest = table_hash(table)
    print(f"{len(table)} words with candidates, sha256 {digest} -> {path}")
    return {"words": len(table), "table_sha256": digest, "table": str(path)}


def synonyms_sweep(args: argparse.Namespace, run: Run) -> dict[str, Any]:
    """Word-swap attack strength against one checkpoint for a grid of embedding-table settings (cosine threshold
    x whole words only / also words of several WordPieces): each cell builds the table from the PRE-TRAINED
    embeddings, measures its coverage of the test set and the attack set, and runs ``wordswap`` on the attack
    set. Cells are records of :func:`paperlab_core.experiment.run_experiment` (``--shard``/``--merge``)."""
    from paperlab_core.experiment import Cell, run_experiment
    from paperlab_core.results import Table
    from robust_tickets.evaluate import candidate_table, run_named_attack, table_coverage
    from robust_tickets.models import load_pretrained

    overrides = {
        "n_attack": args.data_n_attack,
        "root": None if args.data_root is None else str(args.data_root),
    }
    module, dm = load_for_attack(args.ckpt, overrides, run.device)
    if dm.task.synonyms is not None:
        raise ConfigError(
            f"dataset {dm.task.name!r} uses its lexicon table; the sweep is for embedding tables"
        )
    emb = load_pretrained(module.hparams.model_name, module.hparams.num_labels).get_input_embeddings().weight
    split = dm.attack_split()
    texts = dm.task.test.texts if dm.task.test.texts_b is None else dm.task.test.texts_b
    attacked = split.texts if split.texts_b is None else split.texts_b
    cells = [
        Cell(f"cos{c:g}-{'subwords' if sub else 'words'}", {"min_cos": c, "subwords": sub})
        for c in args.min_cos
        for sub in ((False, True) if args.subwords == "both" else (args.subwords == "yes",))
    ]

    def run_cell(cell: Cell) -> dict[str, Any]:
        table = candidate_table(dm.task, dm.tokenizer, emb, **cell.params)
        _, summary = run_named_attack(
            "wordswap", module.net, dm.tokenizer, split, table, args.max_queries, max_len=dm.max_len
        )
        return {
            **cell.params, "test": table_coverage(table, texts), "attack_set": table_coverage(table, attacked),
            "wordswap": summary,
        }  # fmt: skip

    def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
        table = Table(
            ["min cos", "multi-piece words", "words with cands", "cands/word", "attackable/sent", "words/sent",
             "Clean%", "Aua%", "Suc%", "#Query"],
            formats={"cands/word": ".1f", "attackable/sent": ".1f", "words/sent": ".1f", "Clean%": ".1f",
                     "Aua%": ".1f", "Suc%": ".1f", "#Query": ".1f"},
            title="word-swap table coverage (test set) and dense attack strength (attack set)",
        )  # fmt: skip
        for rec in sorted(records, key=lambda r: (-r["result"]["min_cos"], r["result"]["subwords"])):
            r = rec["result"]
            cov, att = r["test"], r["wordswap"]
            table.add(
                r["min_cos"], "yes" if r["subwords"] else "no",
                f"{cov['words_with_candidates']} / {cov['distinct_words']}", cov["candidates_per_word"],
                cov["attackable_per_sentence"], cov["words_per_sentence"], att["clean"], att["aua"], att["suc"],
                att["queries"],
            )  # fmt: skip
        return {
            "main": table,
            "ckpt": str(args.ckpt),
            "max_queries": args.max_queries,
            "n_attack": len(split),
        }

    return run_experiment(run, args, cells, run_cell, summarize)


def data_download(args: argparse.Namespace, run: Run) -> None:
    """Download a paper dataset in its native format."""
    from robust_tickets.download import fetch_dataset

    root = fetch_dataset(args.dataset, None if args.data_root is None else str(args.data_root))
    print(f"{args.dataset}: {root} (use --data.dataset {args.dataset} --data.root {root})")


def ticket_stats(args: argparse.Namespace, run: Run) -> None:
    """Per-layer and per-head sparsity of a ticket or mask checkpoint, R(m) and binary fractions (JSON on stdout)."""
    from robust_tickets.analysis import compare_rankings
    from robust_tickets.analysis import ticket_stats as stats_of

    if args.sparsity is not None and not 0.0 <= args.sparsity < 1.0:
        raise ConfigError(f"--sparsity must be in [0, 1), got {args.sparsity}")
    module = load_module(args.ckpt)
    stats = stats_of(module, args.sparsity)
    if args.compare:
        other = load_module(args.compare)
        stats["compare"] = {
            "ckpt": str(args.compare),
            **compare_rankings(
                module.net.mask_scores, other.net.mask_scores, args.sparsity or module.hparams.sparsity
            ),
        }
    print(json.dumps(stats, indent=2))
