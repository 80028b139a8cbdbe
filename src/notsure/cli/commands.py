"""What every subcommand's parser starts from: ``--debug``, ``--quiet`` and the input limits."""

from __future__ import annotations

import argparse

from notsure.data.limits import ENV_VARS, FLAGS
from notsure.models.runtime import BACKENDS

_LIMIT_HELP = {
    "max_bytes": "decoded bytes one input may take, e.g. 8G (default 4G)",
    "max_images": "samples one input may hold (default 10,000,000)",
    "max_pixels": "pixels of one image file (default 89,478,485)",
    "max_ratio": "how far a compressed stream may expand (default 200x)",
}


def common_options() -> argparse.ArgumentParser:
    """Parent parser so ``--debug`` and ``--quiet`` also work after the subcommand name."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    parent.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or status lines")
    limits = parent.add_argument_group(
        "input limits", "ceilings checked before memory is allocated, so a hostile or damaged "
        "file fails with one line; each also reads an environment variable")
    for name, flag in FLAGS.items():
        limits.add_argument(flag, metavar="N", default=argparse.SUPPRESS,
                            help=f"{_LIMIT_HELP[name]}; env {ENV_VARS[name]}")
    return parent


def add_command(sub: argparse._SubParsersAction, name: str, *, help: str,
                description: str) -> argparse.ArgumentParser:
    """A subcommand's parser with the options every command shares."""
    return sub.add_parser(name, parents=[common_options()], help=help, description=description)


def add_run_argument(parser: argparse.ArgumentParser) -> None:
    """``RUN_DIR``: the selective run a command uses (one name and help everywhere)."""
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder of `notsure selective`")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """``--backend``: what scores a run's members (``predict``, ``evaluate``, ``serve``)."""
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="scoring back end (auto: ONNX Runtime where installed, else torch)")
