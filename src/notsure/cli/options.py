"""What every subcommand shares: help that shows defaults, defaults that live in one place
(the job's config dataclass field), and one flag name per idea.

An option made by :func:`add_option` has no argparse default: the handler passes only the
options given (:func:`given`) and the dataclass fills in the rest. ``--help`` imports the
dataclass to show its default, so parsing a command line never imports the heavy job modules.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import inspect
from collections.abc import Sequence
from typing import Any


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Help text that ends with ``(default: X)`` for every option with a real default.

    Options without one (None, False, suppressed) are left alone, as is help that already says
    its default in words.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or not action.option_strings:
            return text
        spec = getattr(action, "default_from", None)
        if spec is not None:
            return f"{text} (default: {resolve_default(spec)})".replace("%", "%%")
        default = action.default
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
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


def resolve_default(spec: str) -> Any:
    """The default named by ``"module:Owner.name"``: a dataclass field or a parameter."""
    module, _, path = spec.partition(":")
    owner, _, name = path.rpartition(".")
    return default_of(getattr(importlib.import_module(module), owner), name)


class Choices(Sequence):
    """An option's choices, the constant ``"module:NAME"`` of the module that owns them, imported
    only when first needed: when the option is given, or help or usage is shown. So the parser
    offers a job's choices without importing the job (None, an option not given, is left out)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @functools.cached_property
    def values(self) -> tuple[Any, ...]:
        module, _, name = self.spec.partition(":")
        return tuple(v for v in getattr(importlib.import_module(module), name) if v is not None)

    def __getitem__(self, index: Any) -> Any:
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)


def lazy_choices(action: argparse.Action, spec: str) -> argparse.Action:
    """Give ``action`` the :class:`Choices` of ``spec``; set after ``add_argument``, which would
    read them at once (to check the metavar)."""
    action.choices = Choices(spec)
    return action


def add_option(parser: argparse.ArgumentParser, *flags: str, default_from: str,
               choices_from: str | None = None, **kwargs: Any) -> argparse.Action:
    """An option whose default is ``default_from`` (``"module:Config.field"``), shown in
    ``--help``; the parsed value is None when the option is not given. ``choices_from``
    (``"module:NAME"``) gives choices owned by a module too heavy to import for parsing."""
    action = parser.add_argument(*flags, default=None, **kwargs)
    action.default_from = default_from  # type: ignore[attr-defined]
    return action if choices_from is None else lazy_choices(action, choices_from)


def add_guarantee_options(parser: argparse.ArgumentParser, config: str,
                          about: str = "") -> None:
    """``--target-fpr`` and ``--delta``, the guarantee every certifying command takes, with
    defaults from ``config`` (``"module:Config."``); ``about`` ends each help line."""
    add_option(parser, "--target-fpr", type=float, default_from=config + "target_fpr",
               help="max false positive rate of every class" + about)
    add_option(parser, "--delta", type=float, default_from=config + "delta",
               help="allowed probability that the guarantee fails" + about)


def given(**options: Any) -> dict[str, Any]:
    """The options the user gave (not None), to pass to a config dataclass over its defaults."""
    return {k: v for k, v in options.items() if v is not None}


def job_config(config_cls: type, job: str, **options: Any) -> Any:
    """``config_cls`` from the options given; with ``--resume RUN_DIR``, the run's recorded
    settings stand in for the options not given, so ``--resume RUN_DIR`` alone finishes a killed
    run and only a contradicting flag is refused (by the run folder, naming the setting)."""
    chosen = given(**options)
    if chosen.get("resume") is not None:
        from notsure.errors import ConfigError
        from notsure.io.run_folder import read_manifest, recorded_settings

        try:
            recorded = read_manifest(chosen["resume"], job).get("config") or {}
        except ConfigError as exc:
            raise ConfigError(f"--resume: {exc}") from None
        chosen = {**recorded_settings(config_cls, recorded), **chosen}
    return config_cls(**chosen)


def add_data_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--data PATH``, the one way every job names its dataset; the old positional ``PATH``
    still works (hidden): :func:`data_path` reads either."""
    parser.add_argument("--data", metavar="PATH", help=help)
    parser.add_argument("path", nargs="?", metavar="PATH", help=argparse.SUPPRESS)


def add_seed_option(parser: argparse.ArgumentParser, config: str) -> None:
    """``--seed N``: the one seed of every random choice of a job (``config``: "module:Class")."""
    add_option(parser, "--seed", type=int, metavar="N", default_from=f"{config}.seed",
               help="the one seed of every random choice")


def add_folds_option(parser: argparse.ArgumentParser, default_from: str, help: str,
                     old: str | None = None) -> None:
    """``--folds N``, the one name for cross-validation or cross-fitting folds; ``old`` (e.g.
    ``--cv-folds``) still works, hidden."""
    add_option(parser, "--folds", type=int, metavar="N", default_from=default_from, help=help)
    if old is not None:
        parser.add_argument(old, dest="folds", type=int, default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)


def data_path(args: argparse.Namespace) -> str | None:
    """The dataset of ``--data`` or the deprecated positional; both at once is an error."""
    from notsure.errors import ConfigError

    if args.data is not None and args.path is not None:
        raise ConfigError(f"the dataset is given twice ({args.path} and --data {args.data}); "
                          "give it once, as --data PATH")
    return args.data if args.data is not None else args.path


def add_run_options(parser: argparse.ArgumentParser, config: str, *, resume: bool = True
                    ) -> None:
    """Where a job's independent tasks run (``--executor``, ``--workers``, ``--scheduler``),
    ``--resume RUN_DIR`` (jobs that checkpoint their tasks) and ``--mlflow [URI]``, with the
    defaults of the job's config dataclass (``config``: "module:Class")."""
    from notsure.parallel import EXECUTORS
    from notsure.tracking import DEFAULT_TRACKING_URI

    group = parser.add_argument_group("execution and tracking")
    add_option(group, "--executor", choices=EXECUTORS, default_from=f"{config}.executor",
               help="where independent tasks (fold models, CV fits) run: in this process, in "
                    "local worker processes, or on Dask; results are the same on each")
    group.add_argument("--workers", type=int, metavar="N",
                       help="worker processes of --executor processes, or of the local Dask "
                            "cluster (default: one per core, at most one per task)")
    group.add_argument("--scheduler", metavar="ADDRESS",
                       help="a running dask.distributed scheduler (e.g. tcp://10.0.0.5:8786) "
                            "for --executor dask; without it a local Dask cluster is started")
    if resume:
        group.add_argument("--resume", metavar="RUN_DIR",
                           help="continue a killed run in its folder RUN_DIR: the same settings "
                                "and data are required, finished tasks are reused")
    group.add_argument("--mlflow", nargs="?", const=DEFAULT_TRACKING_URI, metavar="URI",
                       help="also log the finished run to MLflow (without URI: "
                            f"{DEFAULT_TRACKING_URI}); needs pip install 'notsure[mlflow]'")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The values of :func:`add_run_options`' flags, for :func:`given`."""
    names = ("executor", "workers", "scheduler", "resume", "mlflow")
    return {name: getattr(args, name, None) for name in names}
