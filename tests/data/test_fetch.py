"""Downloading MNIST from local HTTP mirrors: verification, fallback, no partial files."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from notsure.data import fetch
from notsure.errors import FetchError

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
GZ = tuple(n + ".gz" for n in NAMES)


@pytest.fixture(autouse=True)
def _no_proxy_for_local_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reach the 127.0.0.1 test servers directly even where an HTTP proxy is configured."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()


class _DroppingHandler(_Handler):
    """Announces the full Content-Length, sends half the file, then closes the connection."""

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def serve(folder: Path, handler=_Handler) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 serving ``folder``; yields its URL and the request log."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(handler, directory=str(folder)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", server.requests
    finally:
        server.shutdown()
        server.server_close()


def published_sha256(mnist_dir: Path) -> dict[str, str]:
    """The SHA-256 of each uncompressed file, read from the shared SHA256SUMS."""
    sums = dict(line.split()[::-1] for line in (mnist_dir / "SHA256SUMS").read_text().splitlines()
                if line.strip())
    return {name: sums[name] for name in NAMES}


def content_sha256(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha256(gzip.decompress(data) if path.suffix == ".gz" else data).hexdigest()


def listing(folder: Path) -> set[str]:
    """Every entry in ``folder``, hidden temporary files included."""
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


@pytest.fixture
def bad_mirror(mnist_dir: Path, tmp_path: Path) -> Path:
    """A mirror whose images are good but whose two label files are damaged.

    ``t10k-labels``: one byte of the content flipped, re-gzipped (valid gzip, wrong checksum).
    ``train-labels``: one byte of the gzip stream flipped (does not decompress cleanly).
    """
    folder = tmp_path / "bad"
    folder.mkdir()
    for name in GZ:
        shutil.copy(mnist_dir / name, folder / name)
    content = bytearray(gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    content[100] ^= 0x01
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(content)))
    stream = bytearray((mnist_dir / "train-labels-idx1-ubyte.gz").read_bytes())
    stream[len(stream) // 2] ^= 0xFF
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(bytes(stream))
    return folder


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_fetch_fills_cache_with_verified_files(mnist_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache" / "mnist"
    with serve(mnist_dir) as (url, requests):
        assert fetch.fetch_mnist(dest, mirrors=[url], quiet=True) == dest
    assert listing(dest) == set(GZ)
    assert sorted(requests) == sorted("/" + n for n in GZ)
    want = published_sha256(mnist_dir)
    for name in NAMES:
        assert content_sha256(dest / (name + ".gz")) == want[name]


def test_present_files_are_not_downloaded_again(mnist_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mnist"
    with serve(mnist_dir) as (url, requests):
        fetch.fetch_mnist(dest, mirrors=[url], quiet=True)
        assert len(requests) == 4
        fetch.fetch_mnist(dest, mirrors=[url], quiet=True)
        assert len(requests) == 4
        # Uncompressed copies count as present too.
        raw = tmp_path / "raw"
        raw.mkdir()
        for name in NAMES:
            (raw / name).write_bytes(gzip.decompress((dest / (name + ".gz")).read_bytes()))
        fetch.fetch_mnist(raw, mirrors=[url], quiet=True)
        assert len(requests) == 4
        assert listing(raw) == set(NAMES)


def test_bad_present_file_is_replaced(mnist_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mnist"
    dest.mkdir()
    for name in GZ[:3]:
        shutil.copy(mnist_dir / name, dest / name)
    (dest / NAMES[3]).write_bytes(b"not the labels")
    with serve(mnist_dir) as (url, requests):
        fetch.fetch_mnist(dest, mirrors=[url], quiet=True)
    assert requests == ["/" + GZ[3]]
    assert listing(dest) == set(GZ)
    assert content_sha256(dest / GZ[3]) == published_sha256(mnist_dir)[NAMES[3]]


def test_corrupted_files_leave_nothing_behind(bad_mirror: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mnist"
    with serve(bad_mirror) as (url, _), pytest.raises(FetchError) as info:
        fetch.fetch_mnist(dest, mirrors=[url], quiet=True)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert "SHA-256" in message and "gzip" in message
    # Only the two verified image files remain: no damaged file, no partial or temp file.
    assert listing(dest) == {"train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"}


def test_falls_back_to_next_mirror(bad_mirror: Path, mnist_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mnist"
    with serve(bad_mirror) as (bad_url, bad_requests), serve(mnist_dir) as (good_url, requests):
        fetch.fetch_mnist(dest, mirrors=[bad_url, good_url], quiet=True)
    assert len(bad_requests) == 4
    assert sorted(requests) == ["/t10k-labels-idx1-ubyte.gz", "/train-labels-idx1-ubyte.gz"]
    assert listing(dest) == set(GZ)
    want = published_sha256(mnist_dir)
    assert all(content_sha256(dest / (n + ".gz")) == want[n] for n in NAMES)


def test_connection_dropped_mid_file_leaves_nothing(mnist_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "mnist"
    with serve(mnist_dir, _DroppingHandler) as (url, requests), \
            pytest.raises(FetchError, match=r"connection dropped after \d+ of \d+ bytes"):
        fetch.fetch_mnist(dest, mirrors=[url], quiet=True, timeout=10)
    assert len(requests) == 4
    assert listing(dest) == set()


def test_no_network_says_how_to_place_files(tmp_path: Path) -> None:
    dest = tmp_path / "mnist"
    with pytest.raises(FetchError) as info:
        fetch.fetch_mnist(dest, mirrors=[closed_port_url(), closed_port_url()], quiet=True,
                          timeout=5)
    message = str(info.value)
    assert "by hand" in message and str(dest) in message and "NOTSURE_DATA_DIR" in message
    assert all(name in message for name in GZ)
    assert "\n" not in message  # the CLI prints it as one line
    assert listing(dest) == set()


def test_data_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTSURE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert fetch.data_dir() == tmp_path / "d"
    assert fetch.mnist_path() == tmp_path / "d" / "mnist"
    monkeypatch.delenv("NOTSURE_DATA_DIR")
    assert fetch.data_dir() == tmp_path / "xdg" / "notsure"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert fetch.data_dir() == tmp_path / "home" / ".cache" / "notsure"


def test_ensure_mnist_uses_present_files_else_fetches(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTSURE_DATA_DIR", str(tmp_path))
    calls = []
    monkeypatch.setattr(fetch, "fetch_mnist", lambda dest, quiet: calls.append(dest) or dest)
    (tmp_path / "mnist").mkdir()
    for name in GZ[:3]:
        shutil.copy(mnist_dir / name, tmp_path / "mnist" / name)
    assert fetch.ensure_mnist(quiet=True) == tmp_path / "mnist"
    assert calls == [tmp_path / "mnist"]  # one file missing: fetched
    (tmp_path / "mnist" / NAMES[3]).write_bytes(b"")  # uncompressed copy present
    assert fetch.ensure_mnist(quiet=True) == tmp_path / "mnist"
    assert calls == [tmp_path / "mnist"]
