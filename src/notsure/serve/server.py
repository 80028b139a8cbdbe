"""Start-up: load the run, build the app, run uvicorn in one or several processes.

With several workers (default: one per core), uvicorn binds the port once and each worker
process loads the run and serves it on one core. Python handles one request at a time per
process (the HTTP and JSON work holds the interpreter lock), so one process per core is what
keeps both cores busy: measured on 2 cores, 8 concurrent clients got p99 22 ms with two
processes against 32 ms with one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from notsure.io.progress import say

#: Settings handed to worker processes (uvicorn starts them fresh: they cannot inherit objects).
SETTINGS_ENV = "NOTSURE_SERVE_SETTINGS"


def build_app(run_dir: str | Path, *, backend: str = "auto", max_bytes: int = 8 * 1024 * 1024,
              max_images: int = 256, threads: int | None = None):
    """The app of ``run_dir``, its run loaded; ``threads`` score requests (default: all cores)."""
    # Requests run in parallel on their own threads; BLAS threads on top of them only wake up,
    # spin and wait for the small per-request products (measured: +0.6 ms CPU per request).
    from threadpoolctl import threadpool_limits

    from notsure.deploy.engine import Engine, run_info
    from notsure.serve.app import Limits, create_app

    threadpool_limits(1)
    engine = Engine.load(run_dir, backend=backend, threads=threads)
    return create_app(engine, run_info(run_dir, engine.predictor),
                      Limits(max_bytes=max_bytes, max_images=max_images), workers=threads)


def app_from_environment():
    """uvicorn's factory in each worker process: the app of the settings in ``SETTINGS_ENV``."""
    settings = json.loads(os.environ[SETTINGS_ENV])
    return build_app(settings.pop("run_dir"), threads=1, **settings)


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          backend: str = "auto", max_bytes: int = 8 * 1024 * 1024, max_images: int = 256,
          workers: int | None = None, quiet: bool = False) -> None:
    """Serve ``run_dir`` until interrupted with ``workers`` processes (default: one per core);
    the run is checked before the port opens."""
    t0 = time.perf_counter()
    import uvicorn

    from notsure.deploy.engine import resolve_backend
    from notsure.deploy.predictor import SelectivePredictor
    from notsure.models.runtime import resolve_threads

    workers = resolve_threads(workers)
    where = f"http://{host}:{port}/" if port else f"a free port of {host} (uvicorn prints it)"
    log = {"log_level": "warning" if quiet else "info", "access_log": not quiet}
    if workers == 1:
        app = build_app(run_dir, backend=backend, max_bytes=max_bytes, max_images=max_images)
        say(f"loaded {run_dir} in {time.perf_counter() - t0:.2f} s; serving at {where}",
            quiet=quiet)
        uvicorn.run(app, host=host, port=port, **log)
        return
    # Check the run (files, hashes, back end) here, so a bad folder fails once, with one line,
    # before any worker starts; each worker then loads it for itself.
    predictor = SelectivePredictor.load(run_dir, networks=False)
    resolve_backend(backend, predictor.precision)
    os.environ[SETTINGS_ENV] = json.dumps({
        "run_dir": str(Path(run_dir).resolve()), "backend": backend, "max_bytes": max_bytes,
        "max_images": max_images})
    say(f"serving {run_dir} at {where} with {workers} worker processes", quiet=quiet)
    uvicorn.run("notsure.serve.server:app_from_environment", factory=True, host=host, port=port,
                workers=workers, **log)
