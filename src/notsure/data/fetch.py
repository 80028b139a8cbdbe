"""Where data lives on this machine, and downloading MNIST into it with verified checksums.

The data folder is ``$NOTSURE_DATA_DIR`` if set, else the user cache folder. A download is
written to a temporary file beside its target and renamed only once the SHA-256 of its
decompressed content matches the published one, so a bad mirror never leaves a file behind.
"""

from __future__ import annotations

import gzip
import http.client
import math
import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from notsure.data.mnist import GZ_SUFFIX, RAW_NAMES, SHA256_GZ, SHA256_RAW
from notsure.errors import FetchError
from notsure.io.atomic import atomic_path
from notsure.io.hashing import sha256_stream
from notsure.io.progress import progress, say

ENV_DATA_DIR = "NOTSURE_DATA_DIR"

#: Public mirrors of the gzipped IDX files, tried in order: the two torchvision uses
#: (its S3 mirror first, the original site last as it is often unavailable) and the Google
#: Cloud mirror Keras/TensorFlow datasets use for the IDX files.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

_CHUNK = 1 << 16


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; ``dead`` means the mirror is unreachable."""

    def __init__(self, reason: str, *, dead: bool = False) -> None:
        super().__init__(reason)
        self.dead = dead


def data_dir() -> Path:
    """The data folder: ``$NOTSURE_DATA_DIR``, else ``$XDG_CACHE_HOME/notsure`` or ``~/.cache``."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    cache = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return cache / "notsure"


def mnist_path() -> Path:
    """The folder that holds (or will hold) the four MNIST files: ``data_dir()/mnist``."""
    return data_dir() / "mnist"


def _present(folder: Path, raw_name: str) -> list[Path]:
    """The copies of one MNIST file in ``folder``: gzipped first, then uncompressed."""
    return [p for p in (folder / (raw_name + GZ_SUFFIX), folder / raw_name) if p.is_file()]


def ensure_mnist(quiet: bool = False) -> Path:
    """The MNIST folder, downloading the files first if any of the four is missing."""
    folder = mnist_path()
    if all(_present(folder, name) for name in RAW_NAMES):
        return folder
    return fetch_mnist(folder, quiet=quiet)


def check_mnist_file(path: Path, raw_name: str, *, gzipped: bool | None = None) -> str | None:
    """``None`` if ``path`` holds the published content of ``raw_name``, else a short reason.

    ``gzipped`` defaults to whether the name ends in ``.gz``. A ``.gz`` identical to the reference
    copy is accepted on its own hash; any other is decompressed and its content hashed, since
    mirrors may gzip differently.
    """
    want = SHA256_RAW[raw_name]
    if gzipped is None:
        gzipped = path.name.endswith(GZ_SUFFIX)
    try:
        if gzipped:
            with open(path, "rb") as fh:
                if sha256_stream(fh) == SHA256_GZ[raw_name + GZ_SUFFIX]:
                    return None
            with gzip.open(path, "rb") as fh:
                got = sha256_stream(fh)
        else:
            with open(path, "rb") as fh:
                got = sha256_stream(fh)
    except EOFError:
        return "gzip stream is truncated"
    except (gzip.BadGzipFile, zlib.error) as exc:
        return f"not valid gzip ({exc})"
    except OSError as exc:
        return f"cannot read ({exc})"
    if got != want:
        return f"SHA-256 of the content is {got[:12]}..., expected {want[:12]}..."
    return None


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return str(exc) or type(exc).__name__


def _download(url: str, target: Path, *, timeout: float, quiet: bool) -> None:
    """Stream ``url`` into ``target`` (an open-for-writing temp path); raise ``_MirrorFailed``."""
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _MirrorFailed(_describe(exc, timeout)) from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _MirrorFailed(f"cannot connect: {_describe(exc, timeout)}", dead=True) from exc
    with resp, open(target, "wb") as out:
        length = resp.headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
        n_read = 0
        n_chunks = math.ceil(total / _CHUNK) if total else None
        for chunk in progress(_chunks(resp, timeout), desc=url.rsplit("/", 1)[-1],
                              total=n_chunks, quiet=quiet):
            out.write(chunk)
            n_read += len(chunk)
    if total is not None and n_read != total:
        raise _MirrorFailed(f"connection dropped after {n_read} of {total} bytes")


def _chunks(resp: http.client.HTTPResponse, timeout: float) -> Iterator[bytes]:
    """The response body in chunks; a read error becomes ``_MirrorFailed``."""
    n_read = 0
    while True:
        try:
            chunk = resp.read(_CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise _MirrorFailed(
                f"connection dropped after {n_read} bytes: {_describe(exc, timeout)}"
            ) from exc
        if not chunk:
            return
        n_read += len(chunk)
        yield chunk


def _fetch_one(raw_name: str, dest: Path, mirrors: Sequence[str], dead: set[str],
               failures: list[str], *, timeout: float, quiet: bool) -> bool:
    """Download one file from the first mirror that delivers verified content."""
    gz_name = raw_name + GZ_SUFFIX
    for mirror in mirrors:
        if mirror in dead:  # its failure is already reported once
            continue
        url = mirror.rstrip("/") + "/" + gz_name
        try:
            with atomic_path(dest / gz_name) as tmp:
                _download(url, tmp, timeout=timeout, quiet=quiet)
                reason = check_mnist_file(tmp, raw_name, gzipped=True)
                if reason is not None:
                    raise _MirrorFailed(reason)
        except _MirrorFailed as exc:
            failures.append(f"{url}: {exc}")
            if exc.dead:
                dead.add(mirror)
            continue
        except OSError as exc:  # the destination, not the mirror, is at fault
            raise FetchError(f"cannot write {dest / gz_name}: {exc}") from exc
        say(f"{gz_name}: downloaded from {mirror} and verified", quiet=quiet)
        return True
    return False


def fetch_mnist(
    dest: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = DEFAULT_MIRRORS,
    quiet: bool = False,
    timeout: float = 30,
) -> Path:
    """Download the four gzipped MNIST files into ``dest`` (default ``mnist_path()``).

    Files already present (gzipped or not) and verified are kept; each missing or bad one is
    fetched from the first mirror that delivers the published content. Raises ``FetchError``,
    listing every mirror's failure and how to place the files by hand, if any file is missing.
    """
    dest = Path(dest) if dest is not None else mnist_path()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create the MNIST folder {dest}: {exc}") from exc
    failures: list[str] = []
    missing: list[str] = []
    dead: set[str] = set()
    for raw_name in RAW_NAMES:
        bad: list[Path] = []
        for path in _present(dest, raw_name):
            reason = check_mnist_file(path, raw_name)
            if reason is None:
                break
            say(f"{path}: {reason}; downloading it again", quiet=quiet)
            bad.append(path)
        else:
            if _fetch_one(raw_name, dest, mirrors, dead, failures, timeout=timeout, quiet=quiet):
                # A bad uncompressed copy would shadow the verified .gz: remove it.
                for path in bad:
                    if path.name == raw_name:
                        path.unlink()
            else:
                missing.append(raw_name + GZ_SUFFIX)
    if missing:
        raise FetchError(
            f"could not download {', '.join(missing)} into {dest}: {'; '.join(failures)}. "
            f"To place the files by hand, copy the four MNIST files "
            f"({', '.join(n + GZ_SUFFIX for n in RAW_NAMES)}, gzipped or not) into {dest}, "
            f"or set {ENV_DATA_DIR}=DIR with the files in DIR/mnist"
        )
    return dest
