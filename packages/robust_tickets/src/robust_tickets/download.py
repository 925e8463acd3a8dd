"""Downloads of the paper's datasets in their native formats (used when online; offline, a local copy is read).

Each dataset is fetched from the archive its authors (or GLUE) publish and unpacked into the layout the native
loaders of :mod:`robust_tickets.data` read, so a downloaded copy and a hand-placed copy go through the same
parsing code. Archives go through :func:`paperlab_core.data.download` (``.part`` file, resume, rename); files are
unpacked into a temporary folder and moved into place only once complete, so an interrupted run never leaves a
half-written dataset behind.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from paperlab_core import data as pdata
from paperlab_core.errors import ConfigError, UserError


class ArchiveError(UserError, ValueError):
    """A downloaded archive that is unsafe to unpack or not in the expected layout (it is deleted)."""


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and which files the loader needs (``files``: archive member -> target)."""

    urls: tuple[str, ...]
    files: dict[str, str]  # archive member (file or folder) -> path under the dataset root


SOURCES: dict[str, Source] = {
    "mr": Source(
        ("https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz",),
        {
            "rt-polaritydata/rt-polarity.pos": "rt-polarity.pos",
            "rt-polaritydata/rt-polarity.neg": "rt-polarity.neg",
        },
    ),
    "sst2": Source(
        ("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",),
        {"SST-2/train.tsv": "train.tsv", "SST-2/dev.tsv": "dev.tsv"},
    ),
    # GLUE sentence pairs: the archives (and folders) the HF ``glue`` loader reads; MNLI keeps dev_matched only
    "qnli": Source(
        ("https://dl.fbaipublicfiles.com/glue/data/QNLIv2.zip",),
        {"QNLI/train.tsv": "train.tsv", "QNLI/dev.tsv": "dev.tsv"},
    ),
    "mnli": Source(
        ("https://dl.fbaipublicfiles.com/glue/data/MNLI.zip",),
        {"MNLI/train.tsv": "train.tsv", "MNLI/dev_matched.tsv": "dev_matched.tsv"},
    ),
    "qqp": Source(
        ("https://dl.fbaipublicfiles.com/glue/data/QQP-clean.zip",),
        {"QQP/train.tsv": "train.tsv", "QQP/dev.tsv": "dev.tsv"},
    ),
    "agnews": Source(  # Zhang et al. 2015 CSVs as mirrored by the char-CNN reference repository
        (
            "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/train.csv",
            "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv",
        ),
        {"train.csv": "train.csv", "test.csv": "test.csv"},
    ),
    "imdb": Source(
        ("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
        {"aclImdb/train": "aclImdb/train", "aclImdb/test": "aclImdb/test"},
    ),
}


def default_download_root(dataset: str) -> Path:
    """``$PAPERLAB_DATA/<dataset>`` or ``~/.cache/paperlab/robust_tickets/<dataset>``."""
    return pdata.resolve_data_root(None, "robust_tickets") / dataset


def is_complete(dataset: str, root: Path) -> bool:
    return all((root / target).exists() for target in SOURCES[dataset].files.values())


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a .tar.gz or .zip refusing absolute paths and ``..`` components."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise ArchiveError(f"{archive}: unsafe member path {name!r}")
            zf.extractall(dest)
        return
    with tarfile.open(archive) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, filter="data")
        else:  # pragma: no cover - Python without PEP 706 filters
            for member in tf.getmembers():
                if (
                    member.name.startswith("/")
                    or ".." in Path(member.name).parts
                    or member.islnk()
                    or member.issym()
                ):
                    raise ArchiveError(f"{archive}: unsafe member {member.name!r}")
            tf.extractall(dest)


def fetch_dataset(dataset: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Make ``dataset`` available in its loader layout under ``root`` (default :func:`default_download_root`).

    Returns ``root`` unchanged if the files are already there; else downloads and unpacks. Offline, raises
    :class:`paperlab_core.data.OfflineError` naming the URL and where to put a manual copy."""
    if dataset not in SOURCES:
        raise ConfigError(f"no download source for dataset {dataset!r}; choose one of {', '.join(SOURCES)}")
    source = SOURCES[dataset]
    root = Path(root) if root is not None else default_download_root(dataset)
    if is_complete(dataset, root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / ".downloads"
    with tempfile.TemporaryDirectory(dir=root, prefix=".unpack-") as tmp:
        staging = Path(tmp)
        for url in source.urls:
            name = url.rsplit("/", 1)[-1]
            path = pdata.download(url, downloads / name)
            try:
                if name.endswith((".tar.gz", ".tgz", ".zip")):
                    _safe_extract(path, staging)
                else:
                    shutil.copyfile(path, staging / name)
            except Exception:
                path.unlink(missing_ok=True)  # a corrupt archive must not be reused by the next attempt
                raise
        for member, target in source.files.items():
            src = staging / member
            if not src.exists():
                raise ArchiveError(
                    f"{dataset}: the downloaded archive has no {member!r} (layout changed upstream?)"
                )
            dst = root / target
            dst.parent.mkdir(parents=True, exist_ok=True)
            if dst.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            os.replace(src, dst)
    shutil.rmtree(downloads, ignore_errors=True)
    return root
