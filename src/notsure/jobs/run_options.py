"""What every job shares at its edges: checks of ``executor``, ``workers``, ``scheduler``,
``resume`` and ``mlflow`` (where its tasks run, continuing a killed run, tracking), and how a run
ends (report, completion, tracking, summary line)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from notsure.errors import ConfigError
from notsure.io.progress import say
from notsure.io.run_folder import RunFolder
from notsure.parallel import EXECUTORS, execution_of
from notsure.params import Interval, Options
from notsure.tracking import check_tracking, log_run

#: The options of every cross-fitting job, merged into its ``_constraints`` (a job whose fields
#: are named otherwise, e.g. ``cv_folds``, takes the entries one by one).
CROSS_FIT_CONSTRAINTS = {
    "folds": [Interval(Integral, 2, None)],
    "seed": [Interval(Integral, 0, None)],
    "epochs": [None, Interval(Integral, 1, None)],  # None: the preset's epochs
}
#: The guarantee of every certifying job: a target false positive rate and the probability
#: ``delta`` that the guarantee fails.
GUARANTEE_CONSTRAINTS = {
    "target_fpr": [Interval(Real, 0, 1, closed="neither")],
    "delta": [Interval(Real, 0, 1, closed="neither")],
}
#: Where a job's tasks run, merged into every job's ``_constraints``; :func:`check_run_options`
#: adds the checks across fields.
RUN_CONSTRAINTS = {
    "executor": [Options(EXECUTORS)],
    "workers": [None, Interval(Integral, 1, None)],  # None: one per core
}


def check_run_options(config: Any) -> None:
    """The run-option checks a table cannot say (the values themselves are in RUN_CONSTRAINTS):
    ``--scheduler`` needs ``--executor dask`` and dask needs installing, ``--resume`` excludes
    ``--out``, ``--mlflow`` needs MLflow installed."""
    execution_of(config).check_combination()
    if getattr(config, "resume", None) is not None and config.out is not None:
        raise ConfigError("--resume continues the run in its own folder; drop --out")
    check_tracking(config.mlflow)


def write_and_finish(run: RunFolder, write_outputs: Callable[[RunFolder, Any], None],
                     result: Any, *, seal: Sequence[str] = ()) -> None:
    """A job's last stage: its outputs and report, then the folder marked complete."""
    with run.stage("report"):
        write_outputs(run, result)
    run.finish(seal=seal)


def after_run(path: Path, mlflow: str | None, summary: str, *, quiet: bool,
              curves: Mapping[str, list[dict]] | None = None) -> Path:
    """A finished run: logged to MLflow when asked, its summary printed; returns its folder."""
    if mlflow is not None:
        log_run(path, mlflow, curves=curves)
    say(summary, quiet=quiet)
    return path
