"""Bring your own scores: certified per-class thresholds for any model, and decisions with them.

``notsure calibrate`` reads a model's out-of-sample scores and the true labels, chooses the
thresholds (:class:`~notsure.decisions.NeymanPearsonThresholds`) and writes a run folder with
``thresholds.json``, ``certificates.csv`` and a short report. ``notsure decide`` applies a
thresholds file to new scores and writes one decision per row as CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from notsure.data.score_files import read_labels, read_scores
from notsure.decisions import (
    DEFAULT_DELTA,
    DEFAULT_TARGET_FPR,
    NeymanPearsonThresholds,
)
from notsure.decisions.thresholds import SCORE_KINDS
from notsure.errors import DataError
from notsure.io.atomic import atomic_write_text
from notsure.io.hashing import sha256_file
from notsure.io.progress import say
from notsure.io.run_folder import REPORT_HTML, THRESHOLDS_FILE, RunFolder
from notsure.jobs.calibrate.report import write_report
from notsure.jobs.run_options import GUARANTEE_CONSTRAINTS
from notsure.params import Options, validate


@dataclass
class CalibrateConfig:
    """Settings of ``notsure calibrate``; recorded in the run manifest."""

    scores: str
    labels: str
    out: str | None = None
    target_fpr: float = DEFAULT_TARGET_FPR
    delta: float = DEFAULT_DELTA
    kind: str = "auto"
    strict: bool = False
    quiet: bool = False

    _constraints: ClassVar[dict] = {
        **GUARANTEE_CONSTRAINTS,
        "kind": [Options(SCORE_KINDS)],
    }

    def validate(self) -> None:
        """Refuse settings that cannot work, naming the flag, before anything is read."""
        validate(self, self._constraints)


def run_calibrate(config: CalibrateConfig, argv: list[str] | None = None) -> Path:
    """Calibrate on the files of ``config`` and write the run folder; returns its path."""
    config.validate()
    table = read_scores(config.scores)
    y = read_labels(config.labels, len(table.scores), table.scores.shape[1], table.classes)
    thresholds = NeymanPearsonThresholds(config.target_fpr, config.delta, config.strict)
    if table.classes is not None:
        y = np.asarray(table.classes)[y]  # calibrate takes labels when it is given class names
    thresholds.calibrate(table.scores, y, kind=config.kind, classes=table.classes)
    with RunFolder("calibrate", config.out, config=config, argv=argv) as run:
        for name, path in (("scores", config.scores), ("labels", config.labels)):
            run.record_data(name, {"source": str(path), "sha256": sha256_file(path)})
        thresholds.save(run.file(THRESHOLDS_FILE))
        write_report(run, thresholds, table.scores.shape)
        run.finish()
    texts = thresholds.certificate_texts()
    n_ok = sum(c.certified for c in thresholds.certificates_)
    say(f"{n_ok} of {len(texts)} classes certified; report: {run.path / REPORT_HTML}",
        quiet=config.quiet)
    return run.path




def run_decide(thresholds_path: str, scores_path: str, out: str) -> Path:
    """Apply a thresholds file to new scores; write ``row,prediction,margin_above_threshold``."""
    t = NeymanPearsonThresholds.load(thresholds_path)
    table = read_scores(scores_path)
    classes = tuple(str(c) for c in t.classes_)
    if table.scores.shape[1] != len(classes):
        raise DataError(f"{scores_path}: {table.scores.shape[1]} score columns, but "
                        f"{thresholds_path} was calibrated for {len(classes)} classes")
    if table.classes is not None and table.classes != classes:
        raise DataError(f"{scores_path}: columns {list(table.classes)} differ from the classes "
                        f"{list(classes)} of {thresholds_path}; same names in the same order")
    prediction = t.predict(table.scores)
    margin = t.confidence(table.scores)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["row", "prediction", "margin_above_threshold"])
    for row, (label, m) in enumerate(zip(t.labels_of(prediction), margin, strict=True)):
        writer.writerow([row, label, repr(float(m))])
    return atomic_write_text(out, buf.getvalue())

