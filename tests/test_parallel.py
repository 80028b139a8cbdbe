"""run_tasks: results in task order and identical on every executor; dying workers reported."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from notsure.errors import ConfigError
from notsure.parallel import Execution, WorkerLost, run_tasks


def seeded_draw(task: tuple[int, int], shared: np.ndarray) -> float:
    """A random result that depends only on the task's seed and the shared array."""
    seed, index = task
    rng = np.random.default_rng([seed, index])
    return float(shared[rng.integers(len(shared))] * rng.standard_normal())


def die_once(task: int, marker_dir: str) -> int:
    """Kill the worker the first time task 1 runs; succeed when it is run again."""
    marker = Path(marker_dir) / f"died-{task}"
    if task == 1 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return task * 10


def die_always(task: int, shared: None) -> int:
    if task == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return task


TASKS = [(7, i) for i in range(6)]
SHARED = np.linspace(1.0, 2.0, 50)


def reference() -> list[float]:
    return [seeded_draw(t, SHARED) for t in TASKS]


def test_local_runs_in_order_and_reports_each_result():
    seen = []
    out = run_tasks(seeded_draw, TASKS, shared=SHARED, on_result=lambda i, r: seen.append(i),
                    quiet=True)
    assert out == reference()
    assert seen == list(range(len(TASKS)))


@pytest.mark.slow
def test_processes_give_the_local_results():
    seen = []
    out = run_tasks(seeded_draw, TASKS, shared=SHARED, quiet=True,
                    execution=Execution("processes", workers=2),
                    on_result=lambda i, r: seen.append(i))
    assert out == reference()
    assert sorted(seen) == list(range(len(TASKS)))


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_results():
    pytest.importorskip("distributed")
    out = run_tasks(seeded_draw, TASKS, shared=SHARED, quiet=True,
                    execution=Execution("dask", workers=2))
    assert out == reference()


def _execution(executor: str, workers: int) -> Execution:
    if executor == "dask":
        pytest.importorskip("distributed")
    return Execution(executor, workers=workers)


@pytest.mark.slow
@pytest.mark.parametrize("executor, workers", [("processes", 2), ("dask", 2), ("dask", 1)])
def test_a_worker_that_dies_once_is_retried(executor, workers, tmp_path):
    # On a one-worker dask cluster the death also loses the scattered input and the finished
    # results held by that worker: they are scattered and run again.
    out = run_tasks(die_once, [0, 1, 2], shared=str(tmp_path), quiet=True,
                    execution=_execution(executor, workers))
    assert out == [0, 10, 20]
    assert (tmp_path / "died-1").exists()


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_a_worker_that_always_dies_names_the_task(executor):
    with pytest.raises(WorkerLost, match="task 2"):
        run_tasks(die_always, [0, 1, 2, 3], quiet=True, execution=_execution(executor, 1))


@pytest.mark.parametrize("execution, message", [
    (Execution("threads"), "--executor must be one of"),
    (Execution("processes", workers=0), "--workers must be >= 1"),
    (Execution("local", scheduler="tcp://x:1"), "--scheduler needs --executor dask"),
])
def test_bad_execution_options_name_the_flag(execution, message):
    with pytest.raises(ConfigError, match=message):
        run_tasks(seeded_draw, TASKS, shared=SHARED, execution=execution, quiet=True)
