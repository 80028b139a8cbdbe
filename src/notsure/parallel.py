"""Run independent tasks in this process, in a pool of local processes, or on a Dask cluster.

A task carries everything that decides its result (its seed comes from the run seed and its own
index, never from the worker) and runs with a fixed thread count, so ``local``, ``processes``
and ``dask`` return identical results, in task order. Large inputs every task reads (the
images) travel once per worker as ``shared``, not once per task.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from threadpoolctl import threadpool_limits

from notsure.errors import ConfigError, NotsureError
from notsure.io.progress import progress

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "processes", "dask")
#: Every job's default ``--executor``, with one thread per task: beside one busy process, one
#: single-threaded process per core trained the default CNN 1.34x faster than one process with
#: two threads on a 2-core machine; quiet, 1.19x slower in a 25-second benchmark, mostly the
#: processes' start-up (benchmarks/bench_executors.py, medians of 3).
DEFAULT_EXECUTOR = "processes"
DEFAULT_THREADS = 1


class WorkerLost(NotsureError):
    """A worker process died (killed, out of memory) while running a task."""


@dataclass(frozen=True)
class Execution:
    """Where a job's independent tasks run; never changes what they compute."""

    executor: str = "local"  # the library's default; jobs default to DEFAULT_EXECUTOR
    workers: int | None = None  # processes / LocalCluster workers (default: one per core)
    scheduler: str | None = None  # a running dask.distributed scheduler, e.g. tcp://host:8786

    def validate(self) -> None:
        """Refuse impossible settings with one line naming the flag (a job's config checks the
        values in its constraints table and calls :meth:`check_combination` alone)."""
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, "
                              f"got {self.executor!r}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        self.check_combination()

    def check_combination(self) -> None:
        """``--scheduler`` needs ``--executor dask``, and dask needs dask.distributed."""
        if self.scheduler is not None and self.executor != "dask":
            raise ConfigError("--scheduler needs --executor dask")
        if self.executor == "dask":
            _import_distributed()


def execution_of(config: Any) -> Execution:
    """The ``Execution`` of a job config's ``executor``, ``workers`` and ``scheduler``."""
    return Execution(config.executor, config.workers, config.scheduler)


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError("--executor dask needs dask.distributed: "
                          "pip install 'notsure[dask]'") from None
    return distributed


def _default_workers(n_tasks: int) -> int:
    """One worker per core available to this process, at most one per task."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(n_tasks, cores))


def call_task(fn: Callable[[T, Any], R], task: T, shared: Any, threads: int) -> R:
    """``fn(task, shared)`` with BLAS/OpenMP and torch limited to ``threads`` threads."""
    import sys

    torch = sys.modules.get("torch")  # set torch's count only where the task imported it
    old = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            return fn(task, shared)
        finally:
            if torch is not None:
                torch.set_num_threads(old)


# -- processes: the shared input is sent once to each worker by the initializer ---------------
_SHARED: Any = None


def _init_worker(shared: Any, threads: int) -> None:
    global _SHARED
    _SHARED = shared
    os.environ["OMP_NUM_THREADS"] = str(threads)
    # tqdm's default lock is a multiprocessing one, which a worker ended by SIGTERM would
    # leave behind (and the resource tracker warn about); a worker's bars need no such lock.
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())


def _call_in_worker(fn: Callable[[T, Any], R], task: T, threads: int) -> R:
    return call_task(fn, task, _SHARED, threads)


def run_tasks(
    fn: Callable[[T, Any], R],
    tasks: Sequence[T],
    *,
    shared: Any = None,
    execution: Execution | None = None,
    threads: int = DEFAULT_THREADS,
    names: Sequence[str] | None = None,
    on_result: Callable[[int, R], None] | None = None,
    desc: str = "tasks",
    quiet: bool = False,
) -> list[R]:
    """Run ``fn(task, shared)`` for every task; return the results in task order.

    ``fn`` must be a module-level function (workers import it by name). ``on_result(i, result)``
    runs here, in this process, as soon as task ``i`` finishes (e.g. to save a checkpoint).
    ``names`` label tasks in progress and error messages. A task that raises stops the run with
    its exception; a task whose worker dies is run once more (on Dask, with the shared input
    scattered again if the dead worker held the only copy), then ``WorkerLost`` names it.
    """
    execution = execution or Execution()
    execution.validate()
    names = list(names) if names is not None else [f"task {i}" for i in range(len(tasks))]
    results: list[Any] = [None] * len(tasks)

    def done(i: int, result: R) -> None:
        results[i] = result
        if on_result is not None:
            on_result(i, result)

    if not tasks:
        return []
    if execution.executor == "local":
        for i in progress(range(len(tasks)), desc=desc, quiet=quiet):
            done(i, call_task(fn, tasks[i], shared, threads))
    elif execution.executor == "processes":
        _run_processes(fn, tasks, shared, execution, threads, names, done, desc, quiet)
    else:
        _run_dask(fn, tasks, shared, execution, threads, names, done, desc, quiet)
    return results


def _as_completed(futures: dict[cf.Future, int], running: set[int]) -> Iterator[cf.Future]:
    """Futures as they finish; ``running`` keeps the indices of the tasks being run."""
    pending = set(futures)
    while pending:
        ready, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
        running.clear()
        running.update(futures[f] for f in pending if f.running())
        yield from ready


def _run_processes(fn, tasks, shared, execution, threads, names, done, desc, quiet) -> None:
    todo = set(range(len(tasks)))
    for attempt in (1, 2):
        workers = execution.workers or _default_workers(len(todo))
        context = multiprocessing.get_context("spawn")  # no fork: torch's threads survive it badly
        pool = cf.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                      initargs=(shared, threads))
        finished = False
        try:
            with _interrupts_held():  # workers start here, each sent the shared input
                futures = {pool.submit(_call_in_worker, fn, tasks[i], threads): i
                           for i in sorted(todo)}
            running: set[int] = set()
            for future in progress(_as_completed(futures, running), desc=desc,
                                   total=len(futures), quiet=quiet):
                i = futures[future]
                done(i, future.result())
                todo.discard(i)
            finished = True
        except cf.process.BrokenProcessPool:
            if attempt == 2:
                which = ", ".join(names[i] for i in sorted(running or todo))
                raise WorkerLost(f"a worker process died twice while running {which}; "
                                 "finished tasks are kept (rerun with --resume to continue)"
                                 ) from None
            continue
        finally:
            _stop(pool, finished)
        return


def _stop(pool: cf.ProcessPoolExecutor, finished: bool) -> None:
    """Shut the pool down; unless every task finished (an error, Ctrl-C, SIGTERM), end its
    workers at once instead of waiting for the tasks they are running."""
    if not finished:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=not finished)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while worker processes start, then deliver them: an interrupt
    in the middle of sending a new worker its input leaves it a truncated pickle, and a
    traceback on the terminal."""
    held: list[int] = []
    wanted = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {sig: signal.signal(sig, lambda sig, frame: held.append(sig))
                    for sig in wanted}
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(held):
            signal.raise_signal(sig)


def _run_dask(fn, tasks, shared, execution, threads, names, done, desc, quiet) -> None:
    distributed = _import_distributed()
    if execution.scheduler is not None:
        try:
            client = distributed.Client(execution.scheduler, timeout="30s")
        except OSError as exc:
            raise ConfigError(f"--scheduler {execution.scheduler}: cannot connect ({exc})") \
                from None
        cluster = None
    else:
        cluster = distributed.LocalCluster(
            n_workers=execution.workers or _default_workers(len(tasks)), threads_per_worker=1,
            processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
    todo = set(range(len(tasks)))
    try:
        for attempt in (1, 2):
            # Scattered inputs and finished results live in worker memory: a worker that dies
            # can take the only copy with it, cancelling the tasks that need them. Those tasks
            # are submitted once more, with the inputs scattered again.
            shared_future = client.scatter(shared, broadcast=True, hash=False)
            keys = {i: f"{desc}-{i}-{names[i]}-{attempt}".replace(" ", "_") for i in todo}
            futures = {client.submit(call_task, fn, tasks[i], shared_future, threads,
                                     key=keys[i], pure=False): i for i in sorted(todo)}
            lost = False
            for future in progress(distributed.as_completed(futures), desc=desc,
                                   total=len(futures), quiet=quiet):
                i = futures[future]
                try:
                    result = future.result()
                except distributed.KilledWorker:  # dask ran it on several workers already
                    raise WorkerLost(f"dask workers died while running {names[i]} (key "
                                     f"{keys[i]}); the finished tasks are kept (rerun with "
                                     "--resume to continue)") from None
                except cf.CancelledError:  # its inputs or result died with a worker
                    lost = True
                    continue
                done(i, result)
                todo.discard(i)
            if not lost:
                return
            client.cancel(list(futures))
        which = ", ".join(names[i] for i in sorted(todo))
        raise WorkerLost(f"dask workers died twice, taking the inputs or results of {which} "
                         "with them; the finished tasks are kept (rerun with --resume to "
                         "continue)")
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
