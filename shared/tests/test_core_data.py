from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from paperlab_core import data

PAYLOAD = bytes(range(256)) * 64
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        range_header = self.headers.get("Range")
        type(self).requests.append(range_header)
        if self.path != "/file.bin":
            self.send_error(404)
            return
        start = int(range_header.split("=")[1].split("-")[0]) if range_header else 0
        body = PAYLOAD[start:]
        self.send_response(206 if range_header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _RangeHandler.requests = []
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_resolve_data_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PAPERLAB_DATA", raising=False)
    assert data.resolve_data_root(None, "pkg") == tmp_path / "cache" / "paperlab" / "pkg"
    monkeypatch.setenv("PAPERLAB_DATA", str(tmp_path / "env"))
    assert data.resolve_data_root(None, "pkg") == tmp_path / "env"
    assert data.resolve_data_root(tmp_path / "cli", "pkg") == tmp_path / "cli"


def test_download_verifies_checksum(server: str, tmp_path: Path) -> None:
    dest = data.download(f"{server}/file.bin", tmp_path / "file.bin", sha256=DIGEST)
    assert dest.read_bytes() == PAYLOAD
    assert data.download(f"{server}/file.bin", dest, sha256=DIGEST) == dest  # cached: no new request
    assert len(_RangeHandler.requests) == 1


def test_download_resumes_from_partial_file(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    data.download(f"{server}/file.bin", dest, sha256=DIGEST)
    assert _RangeHandler.requests == ["bytes=1000-"]
    assert dest.read_bytes() == PAYLOAD


def test_checksum_mismatch_leaves_no_file(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "file.bin"
    with pytest.raises(data.ChecksumError, match="does not match"):
        data.download(f"{server}/file.bin", dest, sha256="0" * 64)
    assert not dest.exists() and not (tmp_path / "file.bin.part").exists()


def test_http_error_is_an_offline_error(server: str, tmp_path: Path) -> None:
    with pytest.raises(data.OfflineError, match="HTTP 404"):
        data.download(f"{server}/missing.bin", tmp_path / "missing.bin")


def test_offline_error_names_file_url_and_destination(tmp_path: Path) -> None:
    dest = tmp_path / "weights.pth"
    url = "https://example.invalid/weights.pth"
    with pytest.raises(data.OfflineError) as info:
        data.download(url, dest)
    message = str(info.value)
    assert str(dest) in message and url in message and "place it at" in message
    assert "\n" not in message


def test_require_file(tmp_path: Path) -> None:
    present = tmp_path / "a.txt"
    present.write_text("x")
    assert data.require_file(present) == present
    with pytest.raises(data.OfflineError, match=r"missing file .*b\.txt"):
        data.require_file(tmp_path / "b.txt")
    with pytest.raises(data.ChecksumError):
        data.require_file(present, sha256="1" * 64)


def test_find_shared_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "shared" / "data"
    root.mkdir(parents=True)
    (root / "README.md").write_text("data")
    repo = tmp_path / "repo" / "sub"
    repo.mkdir(parents=True)
    monkeypatch.delenv("PAPERLAB_SHARED_DATA", raising=False)
    assert data.find_shared_data(repo) == root
    monkeypatch.setenv("PAPERLAB_SHARED_DATA", str(tmp_path / "absent"))
    assert data.find_shared_data(repo) is None
    monkeypatch.setenv("PAPERLAB_SHARED_DATA", "none")
    assert data.find_shared_data(repo) is None
    monkeypatch.delenv("PAPERLAB_SHARED_DATA")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    assert data.find_shared_data(outside) is None  # the installed file's location is not searched


def test_require_dir_is_a_one_line_user_error(tmp_path: Path) -> None:
    from paperlab_core.errors import MissingFileError, UserError

    assert data.require_dir(tmp_path) == tmp_path
    with pytest.raises(
        MissingFileError, match=r"data root .*/nope does not exist \(expected an existing folder\)"
    ):
        data.require_dir(tmp_path / "nope")
    assert issubclass(data.OfflineError, UserError) and issubclass(data.ChecksumError, UserError)
