"""What a dataset holds: size, shape, value range, class counts, duplicates and fingerprint.

Used by ``notsure data info`` and recorded in run manifests so a reader can check which data a
result came from.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from notsure.data.dataset import Dataset

#: Number of duplicate groups whose sample ids are listed as examples.
N_EXAMPLES = 5


def _row_hashes(rows: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's bytes (multiply-add of its 8-byte words, wrapping)."""
    n, width = rows.shape
    words = np.zeros((n, -(-width // 8) * 8), dtype=np.uint8)
    words[:, :width] = rows
    words = words.view(np.uint64)
    # Fixed odd multipliers: the hash is only a filter, equal rows are confirmed byte by byte.
    weights = np.random.default_rng(0).integers(1, 2**63, size=words.shape[1], dtype=np.uint64)
    return (words * (weights | np.uint64(1))).sum(axis=1, dtype=np.uint64)


def duplicate_groups(x: np.ndarray) -> list[np.ndarray]:
    """Positions of each group of byte-identical samples (groups of two or more), in order.

    Rows are hashed in one vectorized pass; only rows whose hash repeats are compared exactly.
    """
    n = len(x)
    if n < 2:
        return []
    rows = np.ascontiguousarray(x).reshape(n, -1).view(np.uint8)
    _, inverse, counts = np.unique(_row_hashes(rows), return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(counts[inverse] > 1)
    if len(candidates) == 0:
        return []
    exact = np.ascontiguousarray(rows[candidates]).view(np.dtype((np.void, rows.shape[1])))
    _, group, counts = np.unique(exact.ravel(), return_inverse=True, return_counts=True)
    order = np.argsort(group, kind="stable")
    splits = np.split(candidates[order], np.cumsum(counts)[:-1])
    groups = [g for g in splits if len(g) > 1]
    return sorted(groups, key=lambda g: g[0])


def dataset_info(ds: Dataset) -> dict[str, Any]:
    """A JSON-ready summary of ``ds``: counts, shape, value range, duplicates, provenance."""
    x = ds.x
    finite = np.isfinite(x) if x.dtype.kind == "f" else None
    values = x[finite] if finite is not None else x
    dups = duplicate_groups(x)
    conflicting = sum(len(np.unique(ds.y[g])) > 1 for g in dups)
    info: dict[str, Any] = {
        "source": ds.source,
        "format": ds.format,
        "kind": ds.kind,
        "n": len(ds),
        "shape": list(ds.shape),
        "dtype": str(x.dtype),
        "min": values.min().item() if values.size else None,
        "max": values.max().item() if values.size else None,
        "n_classes": ds.n_classes,
        "class_counts": dict(zip(ds.class_names, ds.class_counts().tolist(), strict=True)),
        "n_groups": None if ds.groups is None else len(np.unique(ds.groups)),
        "duplicates": {
            "groups": len(dups),
            "extra_copies": int(sum(len(g) - 1 for g in dups)),
            "groups_with_conflicting_labels": int(conflicting),
            "examples": [ds.ids[g].tolist() for g in dups[:N_EXAMPLES]],
        },
        "fingerprint": ds.fingerprint,
    }
    if finite is not None:
        info["non_finite_values"] = int(finite.size - finite.sum())
    parts = _id_parts(ds.ids)
    if parts:
        info["parts"] = parts
    return info


def _id_parts(ids: np.ndarray) -> dict[str, int]:
    """Samples per id prefix (``"train/12"`` -> ``train``) of a pooled set, else empty.

    Empty unless every id has a prefix and there are at least two distinct ones.
    """
    heads = []
    for sample_id in ids:
        head, sep, _ = str(sample_id).partition("/")
        if not (head and sep):
            return {}
        heads.append(head)
    counts = Counter(heads)
    return dict(counts) if len(counts) > 1 else {}


def _number(value: float | int | None) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def format_info(info: dict[str, Any]) -> str:
    """The summary from :func:`dataset_info` as aligned text for a person."""
    shape = "x".join(str(s) for s in info["shape"])
    what = "images" if info["kind"] == "images" else "vectors"
    lines = [
        f"source       {info['source']}",
        f"format       {info['format']}",
        f"samples      {info['n']} {what} of {shape} {info['dtype']}, "
        f"values {_number(info['min'])}..{_number(info['max'])}",
    ]
    if "non_finite_values" in info:
        lines.append(f"non-finite   {info['non_finite_values']} values")
    if "parts" in info:
        lines.append("parts        " + ", ".join(f"{k} {v}" for k, v in info["parts"].items()))
    counts = info["class_counts"]
    width = max((len(name) for name in counts), default=0)
    lines.append(f"classes      {info['n_classes']}")
    lines += [f"  {name:<{width}}  {count:>8}" for name, count in counts.items()]
    lines.append(f"groups       {info['n_groups'] if info['n_groups'] is not None else 'none'}")
    dup = info["duplicates"]
    lines.append(
        f"duplicates   {dup['groups']} groups of identical samples, "
        f"{dup['extra_copies']} extra copies, "
        f"{dup['groups_with_conflicting_labels']} with conflicting labels"
    )
    for example in dup["examples"]:
        lines.append(f"  e.g. {', '.join(example)}")
    lines.append(f"fingerprint  {info['fingerprint']}  (SHA-256 of the loaded labels and "
                 "values: the same for any file format)")
    if info.get("file_sha256"):
        lines.append(f"file-sha256  {info['file_sha256']}  (SHA-256 of the file's bytes, as "
                     "sha256sum prints it)")
    return "\n".join(lines)
