"""What every job shares at its edges: checks of ``executor``, ``workers``, ``scheduler``,
``resume`` and ``mlflow`` (where its tasks run, continuing a killed run, tracking), and how a run
ends (report, completion, tracking, summary line)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from notsure.errors import ConfigError
from notsure.io.progress import say
from notsure.io.run_folder import RunFolder
from notsure.parallel import execution_of
from notsure.tracking import check_tracking, log_run


def check_run_options(config: Any) -> None:
    """Refuse bad execution, resume or tracking settings of a job config, naming the flag."""
    execution_of(config).validate()
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
