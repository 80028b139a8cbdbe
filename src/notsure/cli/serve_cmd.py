"""``notsure serve``: the page and JSON API of a selective run, on uvicorn."""

from __future__ import annotations

import argparse

from notsure.cli.commands import add_backend_option, add_command, add_run_argument
from notsure.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "serve",
        help="serve a selective run: a page to draw or drop digits, and a JSON API",
        description="Loads the run once, then answers GET / (a page to draw or drop digits), "
                    "POST /api/predict (PNG/JPEG uploads or JSON pixel arrays), GET /api/model, "
                    "GET /api/health; OpenAPI documentation at /docs.")
    add_run_argument(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    add_backend_option(p)
    p.add_argument("--workers", type=int, metavar="N",
                   help="server processes, each answering on one core (default: one per core)")
    p.add_argument("--max-request-bytes", type=int, default=8 * 1024 * 1024,
                   help="largest request body in bytes")
    p.add_argument("--max-request-images", type=int, default=256,
                   help="most images in one request")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import importlib.util

    if any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn", "multipart")):
        raise ConfigError("notsure serve needs fastapi, uvicorn and python-multipart: "
                          "pip install 'notsure[serve]'")
    if args.max_request_bytes < 1024 or args.max_request_images < 1:
        raise ConfigError("--max-request-bytes must be >= 1024 and --max-request-images >= 1")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: expected 0..65535")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: expected at least 1")
    from notsure.serve.server import serve

    serve(args.run_dir, host=args.host, port=args.port, backend=args.backend,
          max_bytes=args.max_request_bytes, max_images=args.max_request_images,
          workers=args.workers, quiet=args.quiet)
    return 0
