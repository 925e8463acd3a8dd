"""GLUE sentence pairs (QNLI, MNLI, QQP): native TSV readers, pair encoding with segment ids, training on pairs,
and attacks that keep the first segment fixed (criterion 15 + pair support)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from robust_tickets.attacks import Victim, charswap_attack, pgd_attack, run_attack, wordswap_attack
from robust_tickets.data import TextDataModule, TextSplit, load_task, read_glue_pair_tsv
from robust_tickets.evaluate import run_named_attack, write_attack_outputs

from paperlab_core.data import OfflineError

QNLI_HEADER = "index\tquestion\tsentence\tlabel"
MNLI_TRAIN_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)
MNLI_DEV_HEADER = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
    "sentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
)
QQP_HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"

QUESTIONS = ["what is the capital of france ?", 'who wrote " hamlet " ?', "when did the war end ?"]
ANSWERS = ["paris is the capital of france .", "the play is old .", "the war ended in 1945 ."]
NLI = ("entailment", "neutral", "contradiction")


def _write(path: Path, header: str, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *("\t".join(r) for r in rows)]) + "\n", encoding="utf-8")


def _qnli_rows(n: int) -> list[list[str]]:
    labels = ("entailment", "not_entailment")
    return [
        [str(i), QUESTIONS[i % 3], ANSWERS[(i + i // 3) % 3], labels[(i + i // 3) % 3 != i % 3]]
        for i in range(n)
    ]


def _mnli_rows(n: int, dev: bool) -> list[list[str]]:
    rows = []
    for i in range(n):
        premise, hypothesis, gold = f"the man plays music number {i} .", "a man is playing .", NLI[i % 3]
        parses = [f"( {premise} )", f"( {hypothesis} )", f"(ROOT {premise})", f"(ROOT {hypothesis})"]
        labels = [gold] * (5 if dev else 1)
        rows.append(
            [str(i), str(100 + i), f"{100 + i}e", "fiction", *parses, premise, hypothesis, *labels, gold]
        )
    return rows


def _qqp_rows(n: int) -> list[list[str]]:
    return [
        [
            str(i),
            str(2 * i),
            str(2 * i + 1),
            QUESTIONS[i % 3],
            f"{QUESTIONS[(i + i // 3) % 3]}",
            str(int(i // 3 == 0)),
        ]
        for i in range(n)
    ]


def write_glue(root: Path, n_train: int = 8, n_dev: int = 4) -> Path:
    """A GLUE root with ``QNLI/``, ``MNLI/`` and ``QQP/`` in the native layout (a few rows each)."""
    _write(root / "QNLI" / "train.tsv", QNLI_HEADER, _qnli_rows(n_train))
    _write(root / "QNLI" / "dev.tsv", QNLI_HEADER, _qnli_rows(n_dev))
    _write(root / "MNLI" / "train.tsv", MNLI_TRAIN_HEADER, _mnli_rows(n_train, dev=False))
    _write(root / "MNLI" / "dev_matched.tsv", MNLI_DEV_HEADER, _mnli_rows(n_dev, dev=True))
    _write(root / "QQP" / "train.tsv", QQP_HEADER, _qqp_rows(n_train))
    dev = _qqp_rows(n_dev)
    dev.insert(1, ["99", "198", "199", "how do i learn python ?"])  # malformed: too few fields (skipped)
    _write(root / "QQP" / "dev.tsv", QQP_HEADER, dev)
    return root


@pytest.fixture
def glue(tmp_path: Path) -> Path:
    return write_glue(tmp_path / "glue")


# ------------------------------------------------------------------------------------------------ readers
def test_qnli_reader(glue):
    split = read_glue_pair_tsv(glue / "QNLI" / "dev.tsv", "qnli")
    assert len(split) == 4 and split.is_pair
    assert split.texts[1] == 'who wrote " hamlet " ?'  # QUOTE_NONE: quotes are literal
    assert split.texts_b[:2] == ["paris is the capital of france .", "the play is old ."]
    assert split.labels == [0, 0, 0, 1]  # entailment -> 0, not_entailment -> 1 (HF glue/qnli)


def test_mnli_reader_finds_columns_by_name(glue):
    train = read_glue_pair_tsv(glue / "MNLI" / "train.tsv", "mnli")
    dev = read_glue_pair_tsv(glue / "MNLI" / "dev_matched.tsv", "mnli")  # label columns at other positions
    for split in (train, dev):
        assert split.texts[0] == "the man plays music number 0 ." and split.texts_b[0] == "a man is playing ."
    assert dev.labels == [0, 1, 2, 0] and len(train) == 8  # entailment/neutral/contradiction -> 0/1/2


def test_qqp_reader_skips_short_rows_like_hf(glue):
    split = read_glue_pair_tsv(glue / "QQP" / "dev.tsv", "qqp")
    assert len(split) == 4 and "how do i learn python ?" not in split.texts
    assert split.labels == [1, 1, 1, 0] and split.texts_b[3] == QUESTIONS[1]


def test_malformed_glue_files_name_file_and_line(tmp_path):
    bad = tmp_path / "dev.tsv"
    bad.write_text("id\tqid1\tqid2\tquestion1\tquestion_two\tis_duplicate\n1\t2\t3\ta ?\tb ?\t1\n")
    with pytest.raises(ValueError, match=r"dev\.tsv:1: header lacks column\(s\) question2"):
        read_glue_pair_tsv(bad, "qqp")
    bad.write_text(f"{QNLI_HEADER}\n0\ta ?\tb .\tentailment\n1\ta ?\tb .\tcontradiction\n")
    with pytest.raises(ValueError, match=r"dev\.tsv:3: unknown label 'contradiction'.*not_entailment"):
        read_glue_pair_tsv(bad, "qnli")


@pytest.mark.parametrize(
    ("dataset", "file"), [("qnli", "dev.tsv"), ("mnli", "dev_matched.tsv"), ("qqp", "dev.tsv")]
)
def test_missing_glue_file_is_one_line(tmp_path, dataset, file):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OfflineError) as info:
        load_task(dataset, str(tmp_path / "empty"))
    assert "\n" not in str(info.value) and str(tmp_path / "empty" / file) in str(info.value)


def test_load_task_glue_layouts(glue):
    task = load_task("mnli", str(glue), n_attack=3, seed=1)  # GLUE root holding MNLI/
    assert task.num_labels == 3 and task.dev is task.test and len(task.train) == 8
    assert task.attack_indices == load_task("mnli", str(glue / "MNLI"), n_attack=3, seed=1).attack_indices
    assert len(task.attack_indices) == 3 and task.test.subset(task.attack_indices).is_pair
    assert load_task("qqp", str(glue / "QQP"), n_train=5).train.texts_b is not None


# ------------------------------------------------------------------------------------------- encoding
def test_pair_batches_carry_segment_ids(glue, tokenizer):
    dm = TextDataModule("qnli", str(glue), tokenizer="minilm", max_len=48, batch_size=4)
    batch = next(iter(dm.val_dataloader()))
    types, ids, mask = batch["token_type_ids"], batch["input_ids"], batch["attention_mask"]
    assert types.shape == ids.shape
    for row in range(len(ids)):
        seps = (ids[row] == tokenizer.sep_token_id).nonzero().flatten().tolist()
        assert len(seps) == 2
        assert types[row, : seps[0] + 1].eq(0).all() and types[row, seps[0] + 1 : seps[1] + 1].eq(1).all()
        assert types[row, seps[1] + 1 :].eq(0).all() and mask[row, seps[1] + 1 :].eq(0).all()
    single = TextDataModule(n_train=8, batch_size=4, n_attack=2)
    assert "token_type_ids" not in next(iter(single.train_dataloader()))


def test_fit_on_pairs_passes_segment_ids_everywhere(glue, tiny_trainer):
    from robust_tickets.module import TicketModule

    module = TicketModule(
        model_name="tiny-bert", method="robust", epochs_finetune=1, epochs_search=1, epochs_retrain=1,
        attacks=["charswap", "pgd"], attack_max_queries=20,
    )  # fmt: skip
    seen: list[bool] = []
    module.net.backbone.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs.get("token_type_ids") is not None), with_kwargs=True
    )
    dm = TextDataModule("qnli", str(glue), tokenizer="tiny-bert", max_len=48, batch_size=4, n_attack=2)
    trainer = tiny_trainer(fast_dev_run=False, max_epochs=1, limit_val_batches=1)
    trainer.fit(module, datamodule=dm)
    assert [r["phase"] for r in module.history] == ["finetune", "search", "retrain"]
    assert seen and all(seen)  # training, validation, search passes and clean accuracy
    assert set(module.final_metrics) == {"test_acc", "charswap", "pgd"}


# -------------------------------------------------------------------------------------------- attacks
class RecordingPairVictim:
    """p(pos) = sigmoid(#good - #bad + 0.1) of the second segment; records every scored (first, second)."""

    def __init__(self) -> None:
        self.scored: list[tuple[str, str]] = []

    def probs(self, texts, firsts=None):
        assert firsts is not None and len(firsts) == len(texts)
        self.scored += list(zip(firsts, texts, strict=True))
        out = []
        for t in texts:
            p = 1 / (1 + math.exp(-(t.split().count("good") - t.split().count("bad") + 0.1)))
            out.append([1 - p, p])
        return np.array(out)


def test_text_attacks_keep_the_first_segment():
    firsts = ["good good premise", "bad premise with good words"]
    examples = [("good movie", 1), ("good good film", 1)]
    table = {"good": ["bad", "fine"], "movie": ["film"], "premise": ["bad"]}
    for attack in (wordswap_attack(table, frozenset()), charswap_attack(max_queries=30)):
        victim = RecordingPairVictim()
        results = run_attack(attack, examples, victim, parallel_examples=2, firsts=firsts)
        assert [r.first for r in results] == firsts and [r.original for r in results] == [
            "good movie",
            "good good film",
        ]
        assert {f for f, _ in victim.scored} == set(firsts)
        by_first = {f: {t for g, t in victim.scored if g == f} for f in firsts}
        assert "good movie" in by_first[firsts[0]] and "good good film" in by_first[firsts[1]]
    [swap] = run_attack(
        wordswap_attack(table, frozenset()), examples[:1], RecordingPairVictim(), firsts=firsts[:1]
    )
    assert swap.status == "success" and swap.perturbed == "bad movie" and swap.first == firsts[0]


def test_pair_victim_matches_the_pair_call(tiny_backbone, tokenizer):
    model = tiny_backbone.eval()
    firsts, seconds = ["what is the capital ?", "who wrote it ?"], ["paris is the capital .", "nobody"]
    enc = tokenizer(firsts, seconds, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(model(**enc).logits.double(), -1).numpy()
    victim = Victim(model, tokenizer, max_len=48, batch_size=1)
    np.testing.assert_allclose(victim.probs(seconds, firsts), expected, atol=1e-6)
    swapped = victim.probs(firsts, seconds)  # other segment order: other segment ids, other memo entries
    assert victim.scored_sequences == 4 and not np.allclose(swapped, expected)


def test_named_attacks_on_pairs(tiny_backbone, tokenizer, tmp_path):
    model = tiny_backbone.double().eval()
    split = TextSplit(
        ["what is the capital of france ?"] * 3,
        [0, 1, 0],
        ["paris is a city .", "the film was good .", "yes"],
    )
    table = {"city": ["town", "village"], "film": ["movie"], "good": ["great", "fine"]}
    for name in ("wordswap", "charswap", "pgd"):
        results, summary = run_named_attack(name, model, tokenizer, split, table, max_queries=20, max_len=48)
        assert summary["n"] == 3 and [r.first for r in results] == split.texts
        assert [r.original for r in results] == split.texts_b
    write_attack_outputs(tmp_path, "pgd", results, summary)
    assert (tmp_path / "attack_pgd.csv").read_text().startswith("first_segment,original,perturbed")
    results, ratios = pgd_attack(
        model, tokenizer, list(zip(split.texts_b, split.labels, strict=True)), 0.5, firsts=split.texts
    )
    assert all(r <= 1 + 1e-6 for r in ratios)
