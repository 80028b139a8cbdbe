"""Concurrent requests scored together: a small queue in front of the engine.

One image through the ensemble costs little next to the fixed cost of a call (graph dispatch,
routing, the guard), so scoring requests one by one caps a 2-core server at a few hundred
requests per second. Here each request queues its images; ``workers`` threads (one per core)
each take everything queued when they become free, up to ``max_images``, decide it in one
:meth:`Engine.predict` and hand every request its own rows. Nobody waits for a batch to fill:
a request alone is scored at once. Every image's decision depends on that image only (its
route, members, guard and thresholds), so batching never changes an answer.
"""

from __future__ import annotations

import asyncio
import queue
import threading

import numpy as np

from notsure.deploy.engine import Engine
from notsure.deploy.predictor import Decisions

_STOP = None


class Batcher:
    """Decides the images of concurrent requests in shared batches (see the module doc)."""

    def __init__(self, engine: Engine, workers: int = 2, max_images: int = 512) -> None:
        self.engine, self.max_images = engine, max_images
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"notsure-batch-{i}",
                                          daemon=True) for i in range(workers)]
        for t in self._threads:
            t.start()

    async def predict(self, x: np.ndarray) -> Decisions:
        """Decisions for ``x`` ``(N, H, W)``, scored with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((x, loop, future))
        return await future

    def close(self) -> None:
        """Let the workers finish what is queued and stop."""
        for _ in self._threads:
            self._jobs.put(_STOP)

    def _take(self) -> list | None:
        """The next job and whatever else is queued behind it, up to ``max_images``."""
        first = self._jobs.get()
        if first is _STOP:
            return None
        batch, n = [first], len(first[0])
        while n < self.max_images:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                self._jobs.put(_STOP)
                break
            batch.append(job)
            n += len(job[0])
        return batch

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            if len(batch) > 1:
                try:
                    decisions = self.engine.predict(np.concatenate([x for x, _, _ in batch]))
                except Exception:  # noqa: BLE001 - one bad job must not fail the others
                    decisions = None
                if decisions is not None:
                    start = 0
                    for x, loop, future in batch:
                        part = decisions.rows(start, start + len(x))
                        start += len(x)
                        loop.call_soon_threadsafe(_settle, future, part)
                    continue
            for x, loop, future in batch:  # alone, or after a failed shared batch
                try:
                    part = self.engine.predict(x)
                except Exception as exc:  # noqa: BLE001 - handed to the request that sent it
                    part = exc
                loop.call_soon_threadsafe(_settle, future, part)


def _settle(future: asyncio.Future, outcome: Decisions | BaseException) -> None:
    if future.cancelled():  # the client went away
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
