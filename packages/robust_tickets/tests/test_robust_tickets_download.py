"""Dataset downloads: archives in the publishers' layouts unpack into what the native loaders read."""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from robust_tickets import download as dl
from robust_tickets.data import load_task

from paperlab_core.data import OfflineError


def _tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


def _fixtures(folder: Path) -> dict[str, Path]:
    """One archive per URL basename, in the upstream layout (tiny contents)."""
    folder.mkdir()
    mr = folder / "rt-polaritydata.tar.gz"
    _tar(mr, {
        "rt-polaritydata/rt-polarity.pos": "".join(f"good film {i}\n" for i in range(800)).encode(),
        "rt-polaritydata/rt-polarity.neg": "".join(f"bad caf\xe9 {i}\n" for i in range(800)).encode("latin-1"),
    })  # fmt: skip
    sst = folder / "SST-2.zip"
    with zipfile.ZipFile(sst, "w") as zf:
        zf.writestr("SST-2/train.tsv", 'sentence\tlabel\na "quoted" gem\t1\ndull\t0\nfun\t1\n')
        zf.writestr("SST-2/dev.tsv", "sentence\tlabel\nfine\t1\nbad\t0\n")
        zf.writestr("SST-2/test.tsv", "index\tsentence\n0\thidden\n")
    glue = {
        "QNLIv2.zip": {"QNLI/train.tsv": "index\tquestion\tsentence\tlabel\n0\twhy ?\tbecause .\tentailment\n",
                       "QNLI/dev.tsv": "index\tquestion\tsentence\tlabel\n0\tq ?\ta .\tentailment\n"
                       "1\tq ?\tb .\tnot_entailment\n"},
        "MNLI.zip": {"MNLI/train.tsv": "index\tsentence1\tsentence2\tgold_label\n0\ta\tb\tneutral\n",
                     "MNLI/dev_matched.tsv": "index\tsentence1\tsentence2\tlabel1\tgold_label\n"
                     "0\ta\tb\tneutral\tneutral\n1\tc\td\tcontradiction\tcontradiction\n",
                     "MNLI/dev_mismatched.tsv": "index\tsentence1\tsentence2\tgold_label\n"},
        "QQP-clean.zip": {"QQP/train.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n0\t1\t2\ta ?\tb ?\t0\n",
                          "QQP/dev.tsv": "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                          "0\t1\t2\ta ?\tb ?\t0\n1\t3\t4\tc ?\td ?\t1\n"},
    }  # fmt: skip
    for name, members in glue.items():
        with zipfile.ZipFile(folder / name, "w") as zf:
            for member, text in members.items():
                zf.writestr(member, text)
    (folder / "train.csv").write_text(
        '"3","Stocks","rise"\n"1","War","news"\n"2","Match","won"\n"4","Chip","fast"\n'
    )
    (folder / "test.csv").write_text('"2","Cup","final"\n"4","AI","model"\n')
    imdb = {f"aclImdb/{s}/{c}/{i}_7.txt": f"{c} review {i}<br />".encode() for s in ("train", "test")
            for c in ("pos", "neg") for i in range(3)}  # fmt: skip
    imdb["aclImdb/imdb.vocab"] = b"the\n"
    _tar(folder / "aclImdb_v1.tar.gz", imdb)
    return {p.name: p for p in folder.iterdir()}


@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    archives = _fixtures(tmp_path / "upstream")
    calls = []

    def fake(url, dest, sha256=None, timeout=30.0):
        calls.append(url)
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(archives[url.rsplit("/", 1)[-1]], dest)
        return Path(dest)

    monkeypatch.setattr(dl.pdata, "download", fake)
    return calls


@pytest.mark.parametrize(
    ("dataset", "n_test", "n_labels"),
    [
        ("mr", 1000, 2),
        ("sst2", 2, 2),
        ("agnews", 2, 4),
        ("imdb", 6, 2),
        ("qnli", 2, 2),
        ("mnli", 2, 3),
        ("qqp", 2, 2),
    ],
)
def test_fetch_unpacks_the_loader_layout(tmp_path, fake_download, dataset, n_test, n_labels):
    root = dl.fetch_dataset(dataset, tmp_path / dataset)
    assert dl.is_complete(dataset, root)
    assert not list(root.glob(".unpack-*")) and not (root / ".downloads").exists()  # staging cleaned up
    task = load_task(dataset, str(root), n_attack=2)
    assert len(task.test) == n_test and task.num_labels == n_labels
    if dataset == "sst2":
        assert task.train.texts[0] == 'a "quoted" gem' and not (root / "test.tsv").exists()
    if dataset == "agnews":
        assert task.test.labels == [1, 3] and task.test.texts[0] == "Cup final"
    if dataset == "mnli":
        assert task.test.labels == [1, 2] and task.test.texts_b == ["b", "d"]
        assert not (root / "dev_mismatched.tsv").exists()
    n_calls = len(fake_download)
    assert (
        dl.fetch_dataset(dataset, root) == root and len(fake_download) == n_calls
    )  # already there: no download


def test_load_task_downloads_into_the_cache_when_no_copy_exists(tmp_path, fake_download, monkeypatch):
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr("robust_tickets.data.default_root", lambda dataset: None)
    task = load_task("mr", None, n_train=100, n_attack=5)
    assert len(task.train) == 100 and (tmp_path / "cache" / "mr" / "rt-polarity.pos").is_file()
    assert fake_download == [dl.SOURCES["mr"].urls[0]]


def test_offline_download_names_the_url(tmp_path):
    with pytest.raises(OfflineError) as info:  # the test plugin's network guard blocks the request
        dl.fetch_dataset("mr", tmp_path / "mr")
    assert "rt-polaritydata.tar.gz" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "mr" / "rt-polarity.pos").exists()


def test_unsafe_or_unexpected_archives_are_rejected(tmp_path, monkeypatch):
    bad = tmp_path / "SST-2.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.tsv", "x")
    monkeypatch.setattr(
        dl.pdata, "download", lambda url, dest, **kw: shutil.copyfile(bad, dest) and Path(dest)
    )
    (tmp_path / "sst2" / ".downloads").mkdir(parents=True)
    with pytest.raises(ValueError, match="unsafe member"):
        dl.fetch_dataset("sst2", tmp_path / "sst2")
    assert not (tmp_path / "sst2" / ".downloads" / "SST-2.zip").exists()  # the bad archive is not kept
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("SST2/train.tsv", "sentence\tlabel\nx\t1\n")
    with pytest.raises(ValueError, match="has no 'SST-2/train.tsv'"):
        dl.fetch_dataset("sst2", tmp_path / "sst2")
    assert not (tmp_path / "evil.tsv").exists() and not (tmp_path / "sst2" / "train.tsv").exists()
    with pytest.raises(ValueError, match="no download source"):
        dl.fetch_dataset("synthetic", tmp_path)
