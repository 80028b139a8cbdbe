"""Checks of the settings every job shares: ``executor``, ``workers``, ``scheduler``, ``resume``
and ``mlflow`` (where its tasks run, continuing a killed run, tracking)."""

from __future__ import annotations

from typing import Any

from notsure.errors import ConfigError
from notsure.parallel import execution_of
from notsure.tracking import check_tracking


def check_run_options(config: Any) -> None:
    """Refuse bad execution, resume or tracking settings of a job config, naming the flag."""
    execution_of(config).validate()
    if getattr(config, "resume", None) is not None and config.out is not None:
        raise ConfigError("--resume continues the run in its own folder; drop --out")
    check_tracking(config.mlflow)
