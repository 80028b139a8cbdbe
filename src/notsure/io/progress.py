"""Progress display for long work; silenced by ``--quiet``."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None,
             quiet: bool = False, leave: bool = False) -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar on stderr unless ``quiet``."""
    return iter(tqdm(iterable, desc=desc, total=total, disable=quiet, leave=leave,
                     file=sys.stderr, dynamic_ncols=True))


def say(message: str, *, quiet: bool = False) -> None:
    """Print a status line on stderr unless ``quiet`` (stdout stays for results)."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)
