"""Concurrent requests scored together give each request exactly its own answers."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from notsure.deploy.engine import Engine  # noqa: E402
from notsure.errors import DataError  # noqa: E402
from notsure.serve.batching import Batcher  # noqa: E402


class CountingEngine:
    """The real engine, slowed a little so that requests queue up, counting its calls."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.calls = engine, []

    def predict(self, x: np.ndarray):
        self.calls.append(len(x))
        time.sleep(0.01)
        return self.engine.predict(x)


def test_shared_batches_answer_each_request_as_alone(tiny_run, tiny_images):
    engine = Engine.load(tiny_run)
    x, _ = tiny_images
    sizes = [1, 3, 1, 2, 5, 1, 1, 4] * 4
    starts = np.cumsum([0, *sizes])[:-1] % (len(x) - 5)
    requests = [x[s:s + n] for s, n in zip(starts, sizes, strict=True)]
    counting = CountingEngine(engine)
    batcher = Batcher(counting, workers=2)

    async def all_at_once():
        return await asyncio.gather(*(batcher.predict(r) for r in requests))

    try:
        got = asyncio.run(all_at_once())
    finally:
        batcher.close()
    assert len(counting.calls) < len(requests)  # requests were shared
    assert sum(counting.calls) == sum(sizes)
    for r, d in zip(requests, got, strict=True):
        alone = engine.predict(r)
        assert np.array_equal(d.prediction, alone.prediction)
        assert np.array_equal(d.routes, alone.routes)
        np.testing.assert_allclose(d.margins, alone.margins, rtol=1e-5, atol=1e-5)
        assert list(d.reason) == list(alone.reason)


def test_a_failing_request_fails_alone(tiny_run, tiny_images):
    engine = Engine.load(tiny_run)
    x, _ = tiny_images
    batcher = Batcher(CountingEngine(engine), workers=1)
    wrong = np.zeros((1, 30, 30), np.uint8)

    async def mixed():
        return await asyncio.gather(batcher.predict(x[:2]), batcher.predict(wrong),
                                    batcher.predict(x[2:5]), return_exceptions=True)

    try:
        good, bad, good2 = asyncio.run(mixed())
    finally:
        batcher.close()
    assert isinstance(bad, DataError) and "shape" in str(bad)
    assert np.array_equal(good.prediction, engine.predict(x[:2]).prediction)
    assert np.array_equal(good2.prediction, engine.predict(x[2:5]).prediction)
