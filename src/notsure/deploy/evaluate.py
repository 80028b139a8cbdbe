"""``notsure evaluate RUN LABELLED_DATA``: a selective run scored on your own labelled images.

Per-class FPR and TPR with Clopper-Pearson intervals, coverage, the confusion matrix with its
``not_sure`` column and the share rejected as out of distribution, computed exactly as the
selective job computes its "after" metrics. Images that were in the run's training pool (same
bytes) are counted and warned about: they would make the figures look better than they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from notsure.data.images import Images, read_images_for_prediction
from notsure.data.splits import content_ids
from notsure.deploy.engine import Engine
from notsure.deploy.selective_run import SelectiveRun
from notsure.errors import DataError, NotsureError
from notsure.io.atomic import atomic_write_json, to_jsonable
from notsure.metrics import selective_metrics
from notsure.reports import fmt
from notsure.reports.tables import cm_rows, rates_rows, render_table_markdown


@dataclass
class EvaluateConfig:
    """Settings of ``notsure evaluate``."""

    run_dir: str
    data: str
    format: str | None = None
    scale: float | None = None
    preprocess: bool = True
    out: str | None = None  # JSON file for the full metrics
    backend: str = "auto"  # as `predict`: onnx where ONNX Runtime is installed, else torch
    quiet: bool = False


@dataclass
class Evaluation:
    """The metrics of a run's predictor on labelled images, and their overlap with training."""

    source: str
    class_names: tuple[str, ...]
    metrics: dict  # as jobs.selective.evaluate returns it
    n_out_of_distribution: int
    n_preprocessed: int
    overlap: dict  # n_in_pool, n_in_test, or why it could not be checked
    backend: str  # what scored the images: the same engine as `predict` and `serve`

    def as_dict(self) -> dict:
        return {"source": self.source, "class_names": list(self.class_names),
                "backend": self.backend,
                "n_out_of_distribution": self.n_out_of_distribution,
                "out_of_distribution_share": self.n_out_of_distribution / self.metrics["n"],
                "n_preprocessed": self.n_preprocessed, "overlap": self.overlap,
                **self.metrics}


def labels_for(images: Images, class_names: tuple[str, ...]) -> np.ndarray:
    """The images' labels as indices into the predictor's ``class_names`` (matched by name)."""
    if images.y is None:
        raise DataError(f"{images.source}: has no labels; evaluate needs labelled images (put "
                        "each class's images in a sub-folder named after it, or use a labelled "
                        "dataset format); `notsure predict` labels unlabelled images")
    unknown = sorted(set(images.class_names) - set(class_names))
    if unknown:
        raise DataError(f"{images.source}: class {unknown[0]!r} is not one the run was trained on "
                        f"({', '.join(class_names)})")
    index = np.array([class_names.index(name) for name in images.class_names], dtype=np.int64)
    return index[images.y]


def training_overlap(run_dir: Path, x: np.ndarray) -> dict:
    """How many of ``x`` are byte-identical to an image of the run's training pool or test split.

    Reads the run's dataset from where its manifest says it came from, checking its fingerprint.
    """
    try:
        folder = SelectiveRun(run_dir)
        ds = folder.dataset()
        split = folder.split(len(ds))
    except (OSError, KeyError, TypeError, ValueError, NotsureError) as exc:
        return {"checked": False, "why": f"the run's dataset could not be read ({exc})"}
    counts = {"checked": True, "dataset": ds.source}
    for part, index in (("pool", np.union1d(split.train, split.calibration)),
                        ("test", split.test)):
        if ds.x.shape[1:] != x.shape[1:]:
            counts[f"n_in_{part}"] = 0
            continue
        ids = content_ids(np.concatenate([ds.x[index], x]))
        counts[f"n_in_{part}"] = int(np.isin(ids[len(index):], ids[:len(index)]).sum())
    return counts


def run_evaluate(config: EvaluateConfig) -> Evaluation:
    """Score the run's predictor on the labelled images with the engine ``predict`` and
    ``serve`` use (so the figures are those of the answers they give); write the JSON when
    ``out`` is set."""
    run_dir = Path(config.run_dir)
    engine = Engine.load(run_dir, config.backend)
    predictor = engine.predictor
    images = read_images_for_prediction(
        config.data, shape=predictor.image_shape, format=config.format, scale=config.scale,
        preprocess=config.preprocess)
    y = labels_for(images, predictor.class_names)
    decisions = engine.predict(images.x)
    ood = decisions.out_of_distribution
    result = Evaluation(
        source=images.source, class_names=predictor.class_names,
        metrics=selective_metrics(y, decisions.prediction, np.arange(len(predictor.class_names))),
        n_out_of_distribution=0 if ood is None else int(ood.sum()),
        n_preprocessed=images.n_preprocessed, overlap=training_overlap(run_dir, images.x),
        backend=engine.backend)
    if config.out:
        atomic_write_json(config.out, to_jsonable(result.as_dict()))
    return result


def overlap_warning(overlap: dict) -> str | None:
    """A warning line when evaluated images were in the run's training pool (or unchecked)."""
    if not overlap["checked"]:
        return f"warning: could not check for training images: {overlap['why']}"
    if overlap["n_in_pool"]:
        return (f"warning: {fmt.count(overlap['n_in_pool'])} of these images are in the run's "
                f"training pool ({overlap['dataset']}); the figures overstate performance on "
                "new images")
    return None


def format_evaluation(e: Evaluation) -> str:
    """The evaluation as text: headline, per-class rates, confusion matrix."""

    m = e.metrics
    lines = [
        f"{fmt.count(m['n'])} labelled images from {e.source} "
        f"({fmt.count(e.n_preprocessed)} brought to the training form; {e.backend} back end)",
        f"coverage {fmt.pct(m['coverage'])}, accuracy when answering "
        f"{fmt.pct(m['selective_accuracy'])}, {fmt.count(m['n_errors'])} wrong answers, "
        f"{fmt.count(m['n_not_sure'])} not_sure of which {fmt.count(e.n_out_of_distribution)} "
        f"out of distribution ({fmt.share(e.n_out_of_distribution, m['n'])})",
    ]
    if e.overlap["checked"]:
        lines.append(f"in the run's training pool: {fmt.count(e.overlap['n_in_pool'])}; "
                     f"in its test split: {fmt.count(e.overlap['n_in_test'])}")
    rows = [{k: r[k] for k in ("class", "support", "tp", "fp", "fn", "tn")}
            | {"FPR [95% CI]": fmt.interval(r["fpr"], r["fpr_lo"], r["fpr_hi"], digits=3),
               "TPR [95% CI]": fmt.interval(r["tpr"], r["tpr_lo"], r["tpr_hi"])}
            for r in rates_rows(m, e.class_names)]
    lines += ["", render_table_markdown(rows), "confusion matrix (rows: true class)",
              render_table_markdown(cm_rows(m["confusion_matrix"], e.class_names))]
    return "\n".join(lines)
