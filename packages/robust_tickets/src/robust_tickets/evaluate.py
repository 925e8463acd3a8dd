"""Evaluation protocol: clean accuracy and the offline attacks with Clean/Aua/Suc/#Query."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paperlab_core.errors import ConfigError
from robust_tickets.attacks import (
    TEXTFOOLER_STOPWORDS,
    AttackResult,
    SentenceSimilarity,
    Victim,
    charswap_attack,
    embedding_neighbour_table,
    pgd_attack,
    pretrained_sentence_similarity,
    run_attack,
    summarize,
    table_hash,
    wordswap_attack,
)
from robust_tickets.data import TextSplit, TextTask, lexicon_polarity, model_inputs

ATTACKS = ("wordswap", "charswap", "pgd")


@torch.no_grad()
def accuracy(model: nn.Module, loader: Any) -> float:
    model.eval()
    param = next(model.parameters())
    correct = total = 0
    for batch in loader:
        logits = model(**model_inputs(batch, param.device)).logits
        correct += int((logits.argmax(-1).cpu() == batch["labels"]).sum())
        total += len(batch["labels"])
    return correct / max(total, 1)


#: the embedding-neighbour table's settings for datasets without a lexicon table: TextFooler's N = 50; the
#: cosine threshold tuned for MiniLM's input embeddings (TextFooler's 0.5 applies to counter-fitted vectors): the
#: highest of ``synonyms sweep``'s thresholds at which the dense MR model's attack success reaches 80 % (0.35:
#: 85 %; 0.5 without multi-piece words, the table of version 0.2: 31 %; results/mr-attack-strength.json); words of several
#: WordPieces are queried by their mean piece embedding
EMBEDDING_TABLE: dict[str, Any] = {"n_candidates": 50, "min_cos": 0.35, "subwords": True}


def candidate_table(
    task: TextTask,
    tokenizer: Any,
    pretrained_embedding: torch.Tensor | None,
    source: str = "auto",
    **settings: Any,
) -> dict[str, list[str]]:
    """The shared word-swap candidate table: the generator's lexicon table for the synthetic task
    (``auto``/``lexicon``), else embedding neighbours of the PRE-TRAINED embedding matrix for the words of the
    test texts (for sentence pairs: of the second segments, the only ones the attacks perturb), with
    :data:`EMBEDDING_TABLE` updated by ``settings``."""
    if source in {"auto", "lexicon"} and task.synonyms is not None:
        return task.synonyms
    if source == "lexicon":
        raise ConfigError(f"dataset {task.name!r} has no lexicon table; use --source embedding")
    if pretrained_embedding is None:
        raise ValueError("the embedding-neighbour table needs the pre-trained input-embedding matrix")
    texts = task.test.texts if task.test.texts_b is None else task.test.texts_b
    words = sorted({w for t in texts for w in t.split()})
    return embedding_neighbour_table(
        pretrained_embedding, tokenizer, words, polarity=lexicon_polarity(), **{**EMBEDDING_TABLE, **settings}
    )


def table_coverage(table: dict[str, list[str]], texts: Sequence[str]) -> dict[str, float]:
    """How much of ``texts`` a word-swap table can touch: distinct words with candidates (and their share of the
    distinct words), candidates per covered word, and per sentence the words and the attackable words
    (non-stopwords with candidates, the positions :func:`wordswap_attack` tries)."""
    words = {w for t in texts for w in t.split()}
    covered = [w for w in words if table.get(w)]
    per_sentence = [t.split() for t in texts]
    return {
        "distinct_words": len(words),
        "words_with_candidates": len(covered),
        "covered_pct": 100 * len(covered) / max(len(words), 1),
        "candidates_per_word": sum(len(table[w]) for w in covered) / max(len(covered), 1),
        "words_per_sentence": sum(map(len, per_sentence)) / max(len(texts), 1),
        "attackable_per_sentence": sum(
            sum(1 for w in ws if w not in TEXTFOOLER_STOPWORDS and table.get(w)) for ws in per_sentence
        )
        / max(len(texts), 1),
    }


def load_candidate_table(path: str | Path) -> dict[str, list[str]]:
    """A word-swap candidate table written by ``robust-tickets synonyms build`` (JSON: word -> candidates)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"candidate table {path} does not exist (write one with `robust-tickets synonyms build`)"
        )
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON candidate table ({exc})") from exc
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) for c in v)
        for k, v in table.items()
    ):
        raise ConfigError(f"{path}: expected a JSON object mapping each word to a list of candidate words")
    return table


def run_named_attack(
    name: str,
    model: nn.Module,
    tokenizer: Any,
    split: TextSplit,
    table: dict[str, list[str]] | None = None,
    max_queries: int = 500,
    batch_size: int = 128,
    parallel_examples: int = 32,
    max_len: int = 128,
    pgd_eps_rel: float = 0.05,
    seed: int = 0,
    sim_threshold: float = 0.0,
    similarity: SentenceSimilarity | None = None,
) -> tuple[list[AttackResult], dict[str, Any]]:
    """Run one attack on ``split``; returns per-example results and the summary (percent + bookkeeping).

    ``sim_threshold`` > 0 adds the sentence-similarity constraint to ``wordswap`` (``similarity`` defaults to
    the pre-trained MiniLM sentence encoder).

    Sentence pairs: ``wordswap``/``charswap`` perturb only the second segment (``split.texts_b``) and keep the
    first fixed (the similarity constraint compares second segments); ``pgd`` perturbs the word embeddings of
    the whole input."""
    pair = split.texts_b is not None
    examples = list(zip(split.texts_b if pair else split.texts, split.labels, strict=True))
    firsts = split.texts if pair else None
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if name == "pgd":
        results, ratios = pgd_attack(model, tokenizer, examples, pgd_eps_rel, max_len=max_len, firsts=firsts)
        extra["max_delta_over_eps"] = max(ratios) if ratios else 0.0
    elif name in {"wordswap", "charswap"}:
        victim = Victim(model, tokenizer, max_len, batch_size)
        if name == "wordswap":
            if table is None:
                raise ValueError("wordswap needs a candidate table")
            if sim_threshold > 0 and similarity is None:
                similarity = pretrained_sentence_similarity("minilm", max_len, batch_size)
            attack = wordswap_attack(
                table, max_queries=max_queries, similarity=similarity, sim_threshold=sim_threshold
            )
            extra["table_sha256"] = table_hash(table)
            extra["sim_threshold"] = sim_threshold
        else:
            attack = charswap_attack(tokenizer.unk_token or "[UNK]", max_queries=max_queries, seed=seed)
        results = run_attack(attack, examples, victim, parallel_examples, firsts=firsts)
        extra["forward_passes"] = victim.forward_passes
        extra["scored_sequences"] = victim.scored_sequences
    else:
        raise ConfigError(
            f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)} (or textattack:<recipe>)"
        )
    summary = summarize(results)
    wall = time.perf_counter() - start
    total_queries = sum(r.queries for r in results)
    return results, {
        **summary.as_percent(),
        "n": summary.n,
        "skipped": summary.skipped,
        "wall_s": wall,
        "queries_per_s": total_queries / wall if wall > 0 else 0.0,
        **extra,
    }


def write_attack_outputs(
    folder: Path, name: str, results: list[AttackResult], summary: dict[str, Any]
) -> None:
    """Per-example CSV, the summary JSON and the perturbed texts (atomic writes); for sentence pairs the CSV
    starts with the fixed first segment and ``original``/``perturbed`` are second segments."""
    import csv
    import io

    from paperlab_core.logging import write_json_atomic, write_text_atomic

    buf = io.StringIO()
    writer = csv.writer(buf)
    pair = any(r.first is not None for r in results)
    writer.writerow(
        [*(["first_segment"] if pair else []), "original", "perturbed", "label", "status", "queries"]
    )
    for r in results:
        row = [r.original, r.perturbed, r.label, r.status, r.queries]
        writer.writerow([r.first, *row] if pair else row)
    write_text_atomic(folder / f"attack_{name}.csv", buf.getvalue())
    write_text_atomic(folder / f"attack_{name}_perturbed.txt", "\n".join(r.perturbed for r in results) + "\n")
    write_json_atomic(folder / f"attack_{name}_summary.json", summary)
