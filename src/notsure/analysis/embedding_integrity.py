"""Integrity checks for nested embeddings ``{syndrome: {subject: {image: vector}}}``.

A lenient pass over the unpickled object: instead of stopping at the first problem it lists
every one, drops the entries that cannot be used (saying why) and returns the cleaned nested
dict, which the data layer then flattens. Findings that do not stop an entry from being used
(empty subjects, duplicate vectors inside one subject, a subject under two syndromes) are
reported and kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from notsure.data.splits import content_ids
from notsure.errors import DataError

#: Every check, in report order: ``(name, what is done with the entries it finds)``.
CHECKS: tuple[tuple[str, str], ...] = (
    ("syndrome is not a dict of subjects", "dropped"),
    ("subject is not a dict of images", "dropped"),
    ("missing vector (None)", "dropped"),
    ("not a 1-D numeric vector", "dropped"),
    ("wrong dimension", "dropped"),
    ("non-finite values", "dropped"),
    ("duplicate image id", "dropped (later copies)"),
    ("identical vector under another subject", "dropped (later copies)"),
    ("identical vector within one subject", "reported, kept"),
    ("subject under more than one syndrome", "reported, kept"),
    ("empty subject", "reported (no images)"),
    ("empty syndrome", "reported (no images)"),
)
_ACTIONS = dict(CHECKS)


@dataclass
class IntegrityReport:
    """What the checks found: counts, every finding, and the cleaned nested dict."""

    clean: dict[str, dict[str, dict[str, np.ndarray]]]
    dim: int
    found: dict[str, int]
    kept: dict[str, int]
    findings: list[dict[str, str]] = field(default_factory=list)

    @property
    def dropped(self) -> list[dict[str, str]]:
        """The findings whose entries were removed from ``clean``."""
        return [f for f in self.findings if _ACTIONS[f["check"]].startswith("dropped")]

    def check_rows(self) -> list[dict[str, Any]]:
        """One row per check: how many entries it found and what was done with them."""
        counts = Counter(f["check"] for f in self.findings)
        return [{"check": name, "found": counts.get(name, 0), "action": action}
                for name, action in CHECKS]


def _vector(value: Any) -> np.ndarray | None:
    """``value`` as a 1-D numeric array, or None if it is not one."""
    try:
        v = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if v.ndim != 1 or v.dtype.kind not in "iuf":
        return None
    return v


def check_embeddings(obj: Any, source: str, dim: int | None = None) -> IntegrityReport:
    """Check nested embeddings from ``source``; ``dim`` is the expected vector length.

    ``dim=None`` takes the most common length among the 1-D numeric vectors. Raises
    :class:`DataError` when ``obj`` is not a dict or no usable vector is left.
    """
    if not isinstance(obj, dict):
        raise DataError(f"{source}: expected a dict {{syndrome: {{subject: {{image: vector}}}}}}, "
                        f"got {type(obj).__name__}")
    findings: list[dict[str, str]] = []
    note = _noter(findings)
    found: Counter = Counter()
    entries = _structure_pass(obj, note, found)
    if dim is None:
        lengths = Counter(len(e[3]) for e in entries)
        dim = lengths.most_common(1)[0][0] if lengths else 0
    usable = _usable_vectors(entries, dim, note)
    # pass 2: duplicate image ids, then identical vectors
    kept_entries = _drop_identical_vectors(_drop_duplicate_ids(usable, note), note)
    syndromes_of = _note_shared_subjects(kept_entries, note)
    clean = _nest(obj, kept_entries, note)
    if not kept_entries:
        raise DataError(f"{source}: no usable image vector left after the integrity checks "
                        f"({len(findings)} problems, first: {findings[0] if findings else '-'})")
    kept = {"syndromes": len(clean),
            "subjects": len(syndromes_of),
            "images": len(kept_entries)}
    order = {name: i for i, (name, _) in enumerate(CHECKS)}
    findings.sort(key=lambda f: order[f["check"]])
    return IntegrityReport(clean=clean, dim=dim, found=dict(found), kept=kept, findings=findings)


def _noter(findings: list[dict[str, str]]) -> Callable[..., None]:
    """A ``note(check, syndrome, subject, image, detail)`` that appends to ``findings``."""

    def note(check: str, syndrome: Any, subject: Any = "", image: Any = "",
             detail: str = "") -> None:
        findings.append({"check": check, "syndrome": str(syndrome), "subject": str(subject),
                         "image": str(image), "detail": detail})

    return note


def _structure_pass(obj: dict, note: Callable[..., None], found: Counter
                    ) -> list[tuple[str, str, str, np.ndarray]]:
    """Pass 1: well-formed (syndrome, subject, image, vector) entries; tallies into ``found``."""
    entries: list[tuple[str, str, str, np.ndarray]] = []
    for syndrome, subjects in obj.items():
        found["syndromes"] += 1
        if not isinstance(subjects, dict):
            note("syndrome is not a dict of subjects", syndrome,
                 detail=f"holds {type(subjects).__name__}")
            continue
        for subject, images in subjects.items():
            found["subjects"] += 1
            if not isinstance(images, dict):
                note("subject is not a dict of images", syndrome, subject,
                     detail=f"holds {type(images).__name__}")
                continue
            for image, value in images.items():
                found["images"] += 1
                if value is None:
                    note("missing vector (None)", syndrome, subject, image)
                    continue
                v = _vector(value)
                if v is None:
                    shape = getattr(np.asarray(value, dtype=object), "shape", "?")
                    note("not a 1-D numeric vector", syndrome, subject, image,
                         detail=f"{type(value).__name__} of shape {shape}")
                    continue
                entries.append((str(syndrome), str(subject), str(image), v))
    return entries


def _usable_vectors(entries: list[tuple[str, str, str, np.ndarray]], dim: int,
                    note: Callable[..., None]) -> list[tuple[str, str, str, np.ndarray]]:
    """The entries whose vector has length ``dim`` and only finite values; notes the others."""
    usable: list[tuple[str, str, str, np.ndarray]] = []
    for syndrome, subject, image, v in entries:
        if len(v) != dim:
            note("wrong dimension", syndrome, subject, image,
                 detail=f"length {len(v)}, expected {dim}")
        elif not np.isfinite(v).all():
            note("non-finite values", syndrome, subject, image,
                 detail=f"{int((~np.isfinite(v)).sum())} of {dim} values are NaN or inf")
        else:
            usable.append((syndrome, subject, image, v))
    return usable


def _drop_duplicate_ids(entries: list[tuple[str, str, str, np.ndarray]],
                        note: Callable[..., None]) -> list[tuple[str, str, str, np.ndarray]]:
    """Drop (and note) later entries whose image id was already seen."""
    first_seen: dict[str, tuple[str, str]] = {}
    unique_ids = []
    for syndrome, subject, image, v in entries:
        if image in first_seen:
            s0, p0 = first_seen[image]
            note("duplicate image id", syndrome, subject, image,
                 detail=f"first seen under syndrome {s0} subject {p0}")
            continue
        first_seen[image] = (syndrome, subject)
        unique_ids.append((syndrome, subject, image, v))
    return unique_ids


def _note_shared_subjects(entries: list[tuple[str, str, str, np.ndarray]],
                          note: Callable[..., None]) -> dict[str, set[str]]:
    """The syndromes of every subject; notes subjects named under several syndromes."""
    syndromes_of: dict[str, set[str]] = {}
    for syndrome, subject, _, _ in entries:
        syndromes_of.setdefault(subject, set()).add(syndrome)
    for subject, names in syndromes_of.items():
        if len(names) > 1:
            note("subject under more than one syndrome", ", ".join(sorted(names)), subject,
                 detail="its images keep one group id, so they stay in one fold")
    return syndromes_of


def _nest(obj: dict, entries: list[tuple[str, str, str, np.ndarray]],
          note: Callable[..., None]) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """The kept entries as a nested dict; notes syndromes and subjects of ``obj`` left empty."""
    clean: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for syndrome, subject, image, v in entries:
        clean.setdefault(syndrome, {}).setdefault(subject, {})[image] = v
    for syndrome, subjects in obj.items():
        if not isinstance(subjects, dict):
            continue
        if str(syndrome) not in clean:
            note("empty syndrome", syndrome, detail="no usable image")
        for subject, images in subjects.items():
            if isinstance(images, dict) and str(subject) not in clean.get(str(syndrome), {}):
                note("empty subject", syndrome, subject, detail="no usable image")
    return clean


def _drop_identical_vectors(entries: list[tuple[str, str, str, np.ndarray]], note: Any
                            ) -> list[tuple[str, str, str, np.ndarray]]:
    """Drop later copies of a vector already seen under another subject; report copies inside one
    subject. A copy under two subjects could put one image in both train and test."""
    if not entries:
        return entries
    ids = content_ids(np.stack([e[3].astype(np.float32) for e in entries]))
    owner: dict[int, tuple[str, str, str]] = {}
    kept = []
    for (syndrome, subject, image, v), cid in zip(entries, ids.tolist(), strict=True):
        if cid in owner:
            s0, p0, i0 = owner[cid]
            where = f"same values as image {i0} (syndrome {s0} subject {p0})"
            if p0 != subject:
                note("identical vector under another subject", syndrome, subject, image,
                     detail=where)
                continue
            note("identical vector within one subject", syndrome, subject, image, detail=where)
        else:
            owner[cid] = (syndrome, subject, image)
        kept.append((syndrome, subject, image, v))
    return kept
