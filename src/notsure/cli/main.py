"""Entry point of the ``notsure`` command: parses arguments, runs a subcommand, maps errors.

Errors caused by input (:class:`notsure.NotsureError`) print one line on stderr and exit 2;
the traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from notsure import __version__
from notsure.errors import NotsureError

# Each module registers one subcommand: ``register(subparsers)`` sets ``func`` on its parser.
_COMMAND_MODULES = (
    "notsure.cli.data_cmd",
    "notsure.cli.selective_cmd",
    "notsure.cli.embeddings_cmd",
    "notsure.cli.compare_cmd",
    "notsure.cli.ambiguous_cmd",
    "notsure.cli.serve_cmd",
    "notsure.cli.export_cmd",
)

EXIT_USAGE = 2


def common_options() -> argparse.ArgumentParser:
    """Parent parser so ``--debug`` and ``--quiet`` also work after the subcommand name."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    parent.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or status lines")
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    import importlib

    parser = argparse.ArgumentParser(
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
    """Run the command line; returns the exit code (0 ok, 2 bad input, 1 unexpected failure)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = ["notsure", *(sys.argv[1:] if argv is None else argv)]  # for run manifests
    try:
        result = args.func(args)
    except NotsureError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"notsure: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("notsure: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: say so, traceback only with --debug
        if args.debug:
            traceback.print_exc()
        print(f"notsure: internal error: {type(exc).__name__}: {exc} "
              "(run again with --debug for the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
