"""The HTTP face of a selective run: a page to draw or drop digits and a JSON API.

``create_app(engine, info)`` builds a FastAPI app around an already loaded
:class:`notsure.deploy.engine.Engine` (loaded once, at start-up). Every bad request gets a JSON
4xx ``{"error": "<one line>"}``; nothing a client sends produces a 500 or a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from notsure.deploy.engine import Engine, reasons_of
from notsure.deploy.predictor import Decisions
from notsure.errors import NotsureError
from notsure.models.runtime import resolve_threads
from notsure.serve.batching import Batcher
from notsure.serve.uploads import decode_image, json_images, to_model_input

log = logging.getLogger("notsure.serve")


#: JSON requests of at most this many pixels are prepared on the event loop (about 0.1 ms
#: per 28x28 image); bigger ones, and every file upload, in a worker thread.
INLINE_PIXELS = 64 * 28 * 28


@dataclass(frozen=True)
class Limits:
    """What one request may hold."""

    max_bytes: int = 8 * 1024 * 1024
    max_images: int = 256


class TooLarge(Exception):
    """The request body grew past ``Limits.max_bytes`` while being read."""


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_bytes`` (declared or actually streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = _error(413, f"request body over the limit of {self.max_bytes:,} bytes")
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise TooLarge(f"request body over the limit of {self.max_bytes:,} bytes")
            return message

        await self.app(scope, limited, send)


def _error(status: int, message: str) -> JSONResponse:
    line = " ".join(str(message).split())[:500] or "bad request"
    return JSONResponse({"error": line}, status_code=status)


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object",
                "properties": {"images": {"type": "array",
                                          "items": {"type": "string", "format": "binary"}}},
            }},
            "application/json": {"schema": {
                "type": "object", "required": ["images"],
                "properties": {"images": {"type": "array", "description": "H x W arrays of "
                                          "pixel values 0..255 (28 x 28 for MNIST)",
                                          "items": {"type": "array", "items": {
                                              "type": "array", "items": {"type": "number"}}}}},
            }},
        },
    }
}


def create_app(engine: Engine, info: dict[str, Any], limits: Limits | None = None,
               workers: int | None = None) -> FastAPI:
    """The app serving ``engine``; ``info`` is :func:`notsure.deploy.engine.run_info` of its run.
    Concurrent requests are scored together by ``workers`` threads (default: one per core)."""
    limits = limits or Limits()
    shape = tuple(engine.predictor.image_shape)
    class_names = list(engine.predictor.class_names)
    threshold_list = [float(t) for t in engine.predictor.strategy.thresholds]
    batcher = Batcher(engine, workers=resolve_threads(workers))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    model_doc = {**info, "backend": engine.backend,
                 "limits": {"max_bytes": limits.max_bytes, "max_images": limits.max_images}}
    page = resources.files("notsure.serve").joinpath("page.html").read_text(encoding="utf-8")

    app = FastAPI(title="notsure", version="1", lifespan=lifespan,
                  description="A classifier that answers a class or `not_sure`, with per-class "
                              "false positive rates certified by its run.")
    _add_error_handlers(app)
    _add_info_routes(app, page, info, engine, model_doc)
    _add_predict_route(app, engine, info, limits, batcher, shape, class_names, threshold_list)
    app.add_middleware(BodyLimit, max_bytes=limits.max_bytes)
    return app


async def _bad_input(request: Request, exc: NotsureError) -> JSONResponse:
    """A NotsureError raised by a request's content: 400."""
    return _error(400, str(exc))


async def _too_large(request: Request, exc: TooLarge) -> JSONResponse:
    """A body that grew past the limit while streaming: 413."""
    return _error(413, str(exc))


async def _http(request: Request, exc: HTTPException) -> JSONResponse:
    """An HTTPException: its status and detail as a JSON error."""
    return _error(exc.status_code, str(exc.detail))


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request FastAPI's validation refused: 422 naming the first bad field."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return _error(422, f"{where}: {first.get('msg', 'invalid request')}")


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    """Anything else: logged with its traceback, answered 500 without one."""
    log.exception("internal error on %s", request.url.path)
    return _error(500, f"internal error ({type(exc).__name__}); the server keeps running")


def _add_error_handlers(app: FastAPI) -> None:
    """Answer every error with a JSON ``{"error": "<one line>"}``, never a traceback."""
    app.add_exception_handler(NotsureError, _bad_input)
    app.add_exception_handler(TooLarge, _too_large)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _bug)


def _add_info_routes(app: FastAPI, page: str, info: dict[str, Any], engine: Engine,
                     model_doc: dict[str, Any]) -> None:
    """Register the page (``/``), ``/api/health`` and ``/api/model``."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/health")
    async def health() -> dict:
        """Liveness: the run is loaded and answering."""
        return {"status": "ok", "run_id": info["run_id"], "backend": engine.backend}

    @app.get("/api/model")
    async def model() -> dict:
        """Classes, thresholds, target FPR, delta, certificates and the run id."""
        return model_doc


def _add_predict_route(app: FastAPI, engine: Engine, info: dict[str, Any], limits: Limits,
                       batcher: Batcher, shape: tuple[int, ...], class_names: list,
                       threshold_list: list[float]) -> None:
    """Register ``POST /api/predict``, scoring through ``batcher``."""

    @app.post("/api/predict", openapi_extra=PREDICT_BODY)
    async def predict(
        request: Request,
        preprocess: str = Query("auto", pattern="^(auto|mnist|none)$",
                                description="auto: dataset-style gray images of the model's "
                                            "size as is, anything else MNIST-preprocessed"),
        include_input: bool = Query(False, description="return the pixels the model saw"),
    ) -> dict:
        """Label each image with a class or `not_sure`, with the reason, the candidate class,
        its margin and threshold, and every class's score. Send PNG/JPEG files as
        multipart/form-data, or JSON `{"images": [...]}`."""
        names, raw = await _read_images(request, limits, shape, preprocess)
        if all(isinstance(item, np.ndarray) for item in raw) and sum(
                item.size for item in raw) <= INLINE_PIXELS:  # a few JSON images: inline
            x = model_inputs(raw, names, shape, preprocess)
        else:  # decoding files takes a worker thread
            x = await run_in_threadpool(model_inputs, raw, names, shape, preprocess)
        decisions = await batcher.predict(x)
        out = _prediction_items(engine, decisions, names, class_names, threshold_list,
                                x if include_input else None)
        # Plain JSON out, without FastAPI's per-value encoder: the body is already plain data.
        return JSONResponse({"run_id": info["run_id"], "predictions": out})


def _prediction_items(engine: Engine, decisions: Decisions, names: list[str], class_names: list,
                      threshold_list: list[float], x: np.ndarray | None) -> list[dict]:
    """One JSON item per image (with its input pixels when ``x`` is given)."""
    reasons = reasons_of(decisions)
    labels = engine.predictor.labels_of(decisions.prediction)
    margins, candidates = decisions.margins.tolist(), decisions.candidate.tolist()
    out = []
    for i, name in enumerate(names):
        c = candidates[i]
        item = {
            "name": name,
            "label": labels[i],
            "reason": reasons[i],
            "candidate": class_names[c],
            "margin": margins[i][c],
            "threshold": threshold_list[c],
            "scores": dict(zip(class_names, margins[i], strict=True)),
        }
        if x is not None:
            item["input"] = x[i].tolist()
        out.append(item)
    return out


async def _read_images(request: Request, limits: Limits, shape: tuple[int, int],
                       preprocess: str) -> tuple[list[str], list]:
    """Names and decoded-or-parsed images of a request, in order."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        body = await request.body()
        if not body:
            raise HTTPException(400, "empty request body; send JSON {\"images\": [...]}")
        try:
            doc = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HTTPException(400, f"the body is not valid JSON ({exc})") from exc
        images = json_images(doc, shape, limits.max_images, any_shape=preprocess == "mnist")
        return [f"images[{i}]" for i in range(len(images))], images
    if kind == "multipart/form-data":
        form = await request.form(max_files=limits.max_images, max_fields=limits.max_images)
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not files:
            raise HTTPException(400, "no image files in the multipart body; attach PNG or JPEG "
                                     "files (any field name)")
        datas = [await f.read() for f in files]
        return [f.filename or f"file{i}" for i, f in enumerate(files)], datas
    if not kind:
        raise HTTPException(415, "no Content-Type; send multipart/form-data images or "
                                 "application/json {\"images\": [...]}")
    raise HTTPException(415, f"Content-Type {kind} is not accepted; send multipart/form-data "
                             "images or application/json {\"images\": [...]}")


def model_inputs(raw: list, names: list[str], shape: tuple[int, int],
                 preprocess: str) -> np.ndarray:
    """Decode (bytes) and bring every image to the model's input form ``(N, H, W)`` uint8."""
    x = []
    for name, item in zip(names, raw, strict=True):
        image = decode_image(item, name) if isinstance(item, bytes) else item
        x.append(to_model_input(image, shape, preprocess, name))
    return np.stack(x)
