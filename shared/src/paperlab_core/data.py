"""Data roots, checksummed resume-safe downloads and clear offline errors."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from paperlab_core.errors import MissingFileError, UserError

DATA_ENV = "PAPERLAB_DATA"
SHARED_DATA_ENV = "PAPERLAB_SHARED_DATA"


class OfflineError(UserError, RuntimeError):
    """A file is needed that is not on disk and cannot be downloaded."""

    def __init__(self, missing: str | os.PathLike[str], url: str | None = None, reason: str | None = None):
        self.missing = Path(missing)
        self.url = url
        where = f"download {url} " if url else "obtain it "
        because = f" ({reason})" if reason else ""
        super().__init__(
            f"missing file {self.missing}: cannot download it{because}; {where}"
            f"on a machine with network access and place it at {self.missing} (or point --data.root / "
            f"${DATA_ENV} at a folder that holds it)"
        )


class ChecksumError(UserError, RuntimeError):
    """A file's sha256 does not match the expected value."""


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/paperlab`` or ``~/.cache/paperlab``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paperlab"


def resolve_data_root(root: str | os.PathLike[str] | None = None, package: str | None = None) -> Path:
    """Data root: the explicit ``root`` (``--data.root``), else ``$PAPERLAB_DATA``, else the paperlab cache.

    The cache default is namespaced per package (``~/.cache/paperlab/<package>``) so packages never collide.
    """
    if root:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    base = cache_root()
    return base / package if package else base


def find_shared_data(start: str | os.PathLike[str] | None = None) -> Path | None:
    """Locate the project's ``../shared/data`` folder of small real datasets, or ``None``.

    ``$PAPERLAB_SHARED_DATA`` wins (an empty value or ``none`` hides the folder); otherwise the ancestors of
    ``start`` (default: the working folder) are searched for a sibling ``shared/data`` holding a ``README.md``.
    The installed package's own location is deliberately not searched: an installed wheel must behave the same
    wherever it was built.
    """
    if SHARED_DATA_ENV in os.environ:
        env = os.environ[SHARED_DATA_ENV].strip()
        if env.lower() in {"", "none", "0"}:
            return None
        path = Path(env)
        return path if path.is_dir() else None
    origin = Path(start or Path.cwd()).resolve()
    for parent in [origin, *origin.parents]:
        candidate = parent.parent / "shared" / "data"
        if candidate.is_dir() and (candidate / "README.md").exists():
            return candidate
    return None


def require_dir(path: str | os.PathLike[str], what: str = "data root", expected: str = "") -> Path:
    """Return ``path`` if it is an existing folder, else raise a one-line :class:`MissingFileError`."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise MissingFileError(what, folder, expected or "expected an existing folder")
    return folder


def sha256sum(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike[str], expected: str | None) -> None:
    """Raise :class:`ChecksumError` naming the file if its sha256 differs from ``expected``."""
    if expected is None:
        return
    actual = sha256sum(path)
    if actual.lower() != expected.lower():
        raise ChecksumError(f"{path}: sha256 {actual} does not match the expected {expected}")


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    Bytes go to ``dest.part`` first (an interrupted download resumes from it with an HTTP Range request), the
    checksum is verified, and only then is the file renamed to ``dest``. Network failures raise
    :class:`OfflineError` naming the file, the URL and where to put a manual copy.
    """
    dest = Path(dest)
    if dest.exists():
        verify_sha256(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "paperlab"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = getattr(response, "status", 200)
            mode = "ab" if offset and status == 206 else "wb"
            with open(part, mode) as handle:
                shutil.copyfileobj(response, handle, length=1 << 20)
    except OSError as err:
        if isinstance(err, urllib.error.HTTPError) and err.code not in {408, 429, 500, 502, 503, 504}:
            raise OfflineError(dest, url, f"HTTP {err.code}") from err
        raise OfflineError(dest, url, type(err).__name__ + (f": {err}" if str(err) else "")) from err
    try:
        verify_sha256(part, sha256)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def require_file(path: str | os.PathLike[str], url: str | None = None, sha256: str | None = None) -> Path:
    """Return ``path`` if it exists (checking ``sha256``); else download from ``url`` or raise OfflineError."""
    path = Path(path)
    if path.exists():
        verify_sha256(path, sha256)
        return path
    if url is None:
        raise OfflineError(path)
    return download(url, path, sha256=sha256)
