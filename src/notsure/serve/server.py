"""Start-up: load the run once, build the app, run uvicorn."""

from __future__ import annotations

import time
from pathlib import Path

from notsure.io.progress import say


def serve(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000,
          backend: str = "auto", max_bytes: int = 8 * 1024 * 1024, max_images: int = 256,
          quiet: bool = False) -> None:
    """Serve ``run_dir`` until interrupted; the run is loaded before the port opens."""
    t0 = time.perf_counter()
    import uvicorn

    from notsure.jobs.engine import Engine, run_info
    from notsure.serve.app import Limits, create_app

    engine = Engine.load(run_dir, backend=backend)
    app = create_app(engine, run_info(run_dir, engine.predictor),
                     Limits(max_bytes=max_bytes, max_images=max_images))
    say(f"loaded {run_dir} ({len(engine.predictor.models)} members, {engine.backend} back end) "
        f"in {time.perf_counter() - t0:.2f} s; serving http://{host}:{port}/", quiet=quiet)
    uvicorn.run(app, host=host, port=port, log_level="warning" if quiet else "info",
                access_log=not quiet)
