"""One flag name per idea, defaults in one place (the config dataclass), shown by ``--help``."""

from __future__ import annotations

import argparse

import pytest

from notsure.cli.main import build_parser, main
from notsure.cli.options import resolve_default


def subcommands(parser: argparse.ArgumentParser, prefix: str = ""):
    """Every (name, parser) of the command line, nested ``data`` actions included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommands(sub, f"{prefix}{name} ")
    if prefix:
        yield prefix.strip(), parser


@pytest.mark.slow  # imports every job module to read its defaults
def test_help_shows_every_default_taken_from_the_config_dataclass():
    shown = 0
    for name, parser in subcommands(build_parser()):
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if action.help in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            spec = getattr(action, "default_from", None)
            if spec is not None:
                assert f"(default: {resolve_default(spec)})" in text or "(default" in \
                    action.help, f"{name} {action.option_strings}"
                shown += 1
            elif action.default not in (None, False, [], argparse.SUPPRESS) and \
                    action.dest not in ("help", "version"):
                assert f"(default: {action.default})" in text, f"{name} {action.option_strings}"
    assert shown >= 25


def test_no_option_repeats_a_default_that_the_dataclass_owns():
    from notsure.jobs.selective.pipeline import SelectiveConfig

    for name, parser in subcommands(build_parser()):
        for action in parser._actions:
            if action.dest in ("target_fpr", "delta", "folds", "seed", "test_per_class"):
                assert action.default in (None, argparse.SUPPRESS), f"{name} {action.dest}"
    assert resolve_default("notsure.jobs.selective.pipeline:SelectiveConfig.folds") == \
        SelectiveConfig().folds


def parse(argv):
    return build_parser().parse_args(argv)


def test_one_flag_name_per_idea_with_the_old_spellings_still_working():
    assert parse(["compare", "--folds", "3"]).folds == 3
    assert parse(["compare", "--cv-folds", "3"]).folds == 3  # hidden alias
    for command in ("compare", "embeddings"):
        assert parse([command, "--data", "x.csv"]).data == "x.csv"
        assert parse([command, "x.csv"]).path == "x.csv"  # hidden, deprecated positional
        assert "--cv-folds" not in build_parser().format_help()


@pytest.mark.parametrize("command", ["compare", "embeddings"])
def test_the_dataset_given_twice_is_one_clear_error(command, capsys):
    assert main([command, "a.csv", "--data", "b.csv"]) == 2
    err = capsys.readouterr().err
    assert "given twice" in err and "--data" in err and len(err.strip().splitlines()) == 1


def test_a_too_large_test_split_names_the_flag_not_a_python_argument(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "tiny.npz"
    np.savez(data, x_train=rng.integers(0, 255, (60, 28, 28), dtype=np.uint8),
             y_train=np.repeat([0, 1, 2], 20))
    out = tmp_path / "run"
    assert main(["selective", "--data", str(data), "--quick", "--test-per-class", "30",
                 "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--test-per-class: 30 test samples per class leave no training sample" in err
    assert "lower --test-per-class to at most 19" in err
    assert "allow_small" not in err and len(err.splitlines()) == 1 and not out.exists()
