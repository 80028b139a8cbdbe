"""What every subcommand shares: help that shows defaults, and defaults read from the config
dataclasses (each default lives in one place, the dataclass field)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from typing import Any


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help text that ends with ``(default: X)`` for every option with a real default.

    Options without one (None, False, suppressed) are left alone, as is help that already says
    its default in words.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default == [] or default is argparse.SUPPRESS
                or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`DefaultsHelpFormatter`; sub-commands made by
    ``add_subparsers`` inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)


def default_of(owner: Any, name: str) -> Any:
    """The default of field ``name`` of a dataclass, or of parameter ``name`` of a callable."""
    if dataclasses.is_dataclass(owner):
        for f in dataclasses.fields(owner):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
                raise KeyError(f"{owner.__name__}.{name} has no default")
        raise KeyError(f"{owner.__name__} has no field {name!r}")
    default = inspect.signature(owner).parameters[name].default
    if default is inspect.Parameter.empty:
        raise KeyError(f"{owner.__name__}({name}=...) has no default")
    return default


def add_data_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--data PATH``, the one way every job names its dataset; the old positional ``PATH``
    still works (hidden): :func:`data_path` reads either."""
    parser.add_argument("--data", metavar="PATH", help=help)
    parser.add_argument("path", nargs="?", metavar="PATH", help=argparse.SUPPRESS)


def data_path(args: argparse.Namespace) -> str | None:
    """The dataset of ``--data`` or the deprecated positional; both at once is an error."""
    from notsure.errors import ConfigError

    if args.data is not None and args.path is not None:
        raise ConfigError(f"the dataset is given twice ({args.path} and --data {args.data}); "
                          "give it once, as --data PATH")
    return args.data if args.data is not None else args.path
