"""Criterion 15: native-format loaders on fixtures written here, clear errors, and the shared data."""

from __future__ import annotations

import pytest
from robust_tickets.data import (
    SyntheticSentiment,
    TextDataModule,
    load_task,
    read_agnews_csv,
    read_imdb_folder,
    read_mr,
    read_sst2_tsv,
)

from paperlab_core.data import OfflineError


def test_sst2_tsv_keeps_quotes(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text(
        'sentence\tlabel\nit \'s a " charming " film \t1\nbleak and desperate \t0\n', encoding="utf-8"
    )
    split = read_sst2_tsv(path)
    assert split.texts == ['it \'s a " charming " film', "bleak and desperate"] and split.labels == [1, 0]


def test_sst2_malformed(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\tlabel\nfoo\t1\n")
    with pytest.raises(ValueError, match="header"):
        read_sst2_tsv(bad)
    bad.write_text("sentence\tlabel\nfoo\tpositive\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2"):
        read_sst2_tsv(bad)
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_sst2_tsv(empty)


def test_agnews_csv_maps_labels(tmp_path):
    path = tmp_path / "test.csv"
    path.write_text('"3","Wall St. Bears","Short-sellers are back."\n"1","Title, with comma","Desc\\two"\n')
    split = read_agnews_csv(path)
    assert split.labels == [2, 0]
    assert split.texts[0] == "Wall St. Bears Short-sellers are back."
    assert split.texts[1].startswith("Title, with comma Desc")
    path.write_text('"5","x","y"\n')
    with pytest.raises(ValueError, match="class 1-4"):
        read_agnews_csv(path)


def test_imdb_folders(tmp_path):
    for split in ("train", "test"):
        for sub, text in (("pos", "great<br />fun"), ("neg", "awful")):
            folder = tmp_path / "aclImdb" / split / sub
            folder.mkdir(parents=True)
            (folder / "0_9.txt").write_text(text)
    data = read_imdb_folder(tmp_path, "test")
    assert data.texts == ["awful", "great<br />fun"] and data.labels == [0, 1]
    task = load_task("imdb", str(tmp_path), n_attack=1)
    assert task.num_labels == 2 and len(task.test) == 2


def test_mr_files_and_split(tmp_path):
    (tmp_path / "rt-polarity.pos").write_text("".join(f"good film {i}\n" for i in range(800)))
    (tmp_path / "rt-polarity.neg").write_bytes(
        "".join(f"bad caf\xe9 {i}\n" for i in range(800)).encode("latin-1")
    )
    data = read_mr(tmp_path)
    assert len(data) == 1600 and data.texts[800] == "bad caf\xe9 0"
    task = load_task("mr", str(tmp_path), n_train=100, n_attack=20)
    assert len(task.test) == 1000 and sum(task.test.labels) == 500
    assert len(task.dev) == 500 and sum(task.dev.labels) == 250
    assert len(task.train) == 100 and sum(task.train.labels) == 50
    assert not set(task.train.texts) & set(task.test.texts)


@pytest.mark.parametrize("dataset", ["mr", "sst2", "agnews", "imdb"])
def test_missing_files_give_one_line_error(tmp_path, dataset):
    from paperlab_core.errors import MissingFileError

    with pytest.raises(MissingFileError) as info:  # a --data.root that does not exist
        load_task(dataset, str(tmp_path / "nowhere"))
    assert "\n" not in str(info.value) and "nowhere" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(OfflineError) as info:  # one that exists but lacks the files: names the missing file
        load_task(dataset, str(tmp_path / "empty"))
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "empty") in message
    with pytest.raises(MissingFileError):
        TextDataModule(dataset=dataset, root=str(tmp_path / "nowhere"))


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        TextDataModule(dataset="mnist")


def test_synthetic_labels_follow_the_generator(synthetic):
    split = synthetic.split(300, seed=1)
    assert all(synthetic.label(t) == y for t, y in zip(split.texts, split.labels, strict=True))
    assert 0.3 < sum(split.labels) / 300 < 0.7
    table = synthetic.synonym_table()
    for word, cands in list(table.items())[:200]:
        assert all(synthetic.sign.get(c, 0) == synthetic.sign.get(word, 0) for c in cands)
    assert len(synthetic.pos) > 100 and len(synthetic.neg) > 100


def test_synthetic_respects_tokenizer(tokenizer):
    gen = SyntheticSentiment(tokenizer)
    assert all(len(tokenizer.tokenize(w)) == 1 for w in gen.pos[:50] + gen.neg[:50])


@pytest.mark.data
def test_shared_data_counts(shared_data):
    mr = read_mr(shared_data / "text" / "rt-polarity")
    assert sum(mr.labels) == 5331 and len(mr) == 10662
    dev = read_sst2_tsv(shared_data / "text" / "sst2" / "dev.tsv")
    assert len(dev) == 872 and sum(dev.labels) == 444
    train = sum(
        len(read_sst2_tsv(p)) for p in sorted((shared_data / "text" / "sst2").glob("train_alps_part*.tsv"))
    )
    assert train == 67_349
    ag = read_agnews_csv(shared_data / "text" / "ag_news" / "test.csv")
    assert len(ag) == 7600 and all(ag.labels.count(c) == 1900 for c in range(4))
