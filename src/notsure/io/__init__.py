"""I/O at the edges: atomic writes, run folders and progress display."""

from notsure.io.atomic import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from notsure.io.run_folder import RunFolder

__all__ = [
    "RunFolder",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
]
