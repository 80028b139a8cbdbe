"""SHA-256 of files and streams, read in blocks so large files never sit in memory whole."""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO

_BLOCK = 1 << 20


def sha256_stream(fh: BinaryIO) -> str:
    """Hex SHA-256 of everything left to read in the binary file object ``fh``."""
    h = hashlib.sha256()
    for block in iter(lambda: fh.read(_BLOCK), b""):
        h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file at ``path``."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)
