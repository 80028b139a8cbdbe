"""Entry point of the ``notsure`` command: parses arguments, runs a subcommand, maps errors.

Errors caused by input (:class:`notsure.NotsureError`) print one line on stderr and exit 2;
the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence

from notsure import __version__
from notsure.data.limits import FLAGS, Limits, parse_size, use_limits
from notsure.errors import NotsureError

# Each module registers one subcommand: ``register(subparsers)`` sets ``func`` on its parser.
_COMMAND_MODULES = (
    "notsure.cli.data_cmd",
    "notsure.cli.selective_cmd",
    "notsure.cli.embeddings_cmd",
    "notsure.cli.compare_cmd",
    "notsure.cli.ambiguous_cmd",
    "notsure.cli.calibrate_cmd",
    "notsure.cli.evaluate_cmd",
    "notsure.cli.serve_cmd",
    "notsure.cli.export_cmd",
)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM

class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``docker stop``, ``kill``): unwinds like Ctrl-C, so run folders are
    marked ``failed`` and half-written files removed."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only)."""
    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"terminated by signal {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _limits(args: argparse.Namespace) -> Limits:
    """The limits of this command: defaults, then environment variables, then flags."""
    given = {name: parse_size(getattr(args, name), flag) for name, flag in FLAGS.items()
             if getattr(args, name, None) is not None}
    return Limits.from_env(**given)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    import importlib

    from notsure.cli.options import Parser

    parser = Parser(
        prog="notsure",
        description="Classifiers that know when they are not sure, and evaluation you can audit.",
    )
    parser.add_argument("--version", action="version", version=f"notsure {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, 1 unexpected failure,
    130 interrupted, 143 terminated)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = ["notsure", *(sys.argv[1:] if argv is None else argv)]  # for run manifests
    try:
        with _sigterm_unwinds(), use_limits(_limits(args)):
            result = args.func(args)
    except NotsureError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"notsure: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("notsure: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("notsure: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not bad input: say so, traceback only with --debug
        if args.debug:
            traceback.print_exc()
        print(f"notsure: internal error: {type(exc).__name__}: {exc} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
