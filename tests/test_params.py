"""Settings checked from each config's constraints table (``notsure.params``): every kind of
constraint accepts and refuses the right values, and a refusal is one line naming the flag."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pytest

import notsure
from notsure.errors import ConfigError
from notsure.params import Interval, Options, flag, validate

SRC = str(Path(notsure.__file__).resolve().parents[1])


@dataclass
class Settings:
    folds: int = 5
    target_fpr: float = 0.01
    epochs: int | None = None
    rule: str = "routed"


TABLE = {
    "folds": [Interval(Integral, 2, None)],
    "target_fpr": [Interval(Real, 0, 1, closed="neither")],
    "epochs": [None, Interval(Integral, 1, None)],
    "rule": [Options(("routed", "min-fold"))],
}


def refusal(**settings) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(Settings(**settings), TABLE)
    return str(caught.value)


def test_valid_settings_pass():
    validate(Settings(), TABLE)
    validate(Settings(folds=np.int64(2), target_fpr=np.float64(0.5), epochs=1, rule="min-fold"),
             TABLE)


@pytest.mark.parametrize("settings, message", [
    ({"folds": 1}, "--folds must be an integer >= 2, got 1"),
    ({"folds": 2.0}, "--folds must be an integer >= 2, got 2.0"),
    ({"folds": True}, "--folds must be an integer >= 2, got True"),
    ({"folds": "3"}, "--folds must be an integer >= 2, got '3'"),
    ({"target_fpr": 0.0}, "--target-fpr must lie in (0, 1), got 0.0"),
    ({"target_fpr": 1}, "--target-fpr must lie in (0, 1), got 1"),
    ({"target_fpr": math.nan}, "--target-fpr must lie in (0, 1), got nan"),
    ({"epochs": 0}, "--epochs must be an integer >= 1, got 0"),
    ({"rule": "mean"}, "--rule must be one of routed, min-fold, got 'mean'"),
    ({"rule": None}, "--rule must be one of routed, min-fold, got None"),
])
def test_a_bad_value_is_one_line_naming_the_flag_and_the_value(settings, message):
    assert refusal(**settings) == message


def test_the_first_bad_field_of_the_table_is_named():
    assert refusal(folds=0, rule="mean").startswith("--folds ")


@pytest.mark.parametrize("constraint, good, bad, text", [
    (Interval(Integral, 2, None), [2, 3, np.int32(7)], [1, 2.5, False, None], "be an integer >= 2"),
    (Interval(Integral, 2, None, closed="neither"), [3], [2], "be an integer > 2"),
    (Interval(Integral, 1, 10), [1, 10], [0, 11], "be an integer in [1, 10]"),
    (Interval(Integral, 1, 10, closed="left"), [1, 9], [10], "be an integer in [1, 10)"),
    (Interval(Real, 0, None, closed="neither"), [1e-9, 3, 30.0], [0, -1.0, math.nan, "1"],
     "be a number > 0"),
    (Interval(Real, None, 1, closed="left"), [0.99, -5], [1, 1.5], "be a number < 1"),
    (Interval(Real, 0, 1, closed="neither"), [0.5, np.float64(1e-5)], [0, 1.0, math.inf],
     "lie in (0, 1)"),
    (Interval(Real, 0, 1, closed="right"), [1.0], [0.0], "lie in (0, 1]"),
    (Options(("drop", "relabel")), ["drop", "relabel"], ["Drop", None, 1, np.array([1, 2])],
     "be one of drop, relabel"),
    (Options((None, "balanced")), [None, "balanced"], ["auto"], "be one of None, balanced"),
])
def test_each_kind_of_constraint_accepts_and_refuses_the_right_values(constraint, good, bad,
                                                                       text):
    assert all(constraint.accepts(v) for v in good)
    assert not any(constraint.accepts(v) for v in bad)
    assert constraint.text == text


def test_none_is_accepted_only_where_the_table_says():
    validate(Settings(epochs=None), TABLE)
    assert refusal(folds=None) == "--folds must be an integer >= 2, got None"


def test_a_setting_without_a_flag_is_named_as_given():
    with pytest.raises(ConfigError, match=r"^tsne_iter must be an integer >= 1, got 0$"):
        validate(Settings(folds=0), {"folds": [Interval(Integral, 1, None)]},
                 names={"folds": "tsne_iter"})
    assert flag("test_per_class") == "--test-per-class"


def test_constraints_refuse_nonsense_declarations():
    with pytest.raises(TypeError):
        Interval(float, 0, 1)
    with pytest.raises(ValueError):
        Interval(Real, 0, 1, closed="open")
    with pytest.raises(ValueError):
        Interval(Integral, None, None)
    with pytest.raises(ValueError):
        Options(())


# -- the jobs' tables ---------------------------------------------------------------------------

def bad_value(allowed: list) -> object:
    """A value every constraint of ``allowed`` refuses."""
    for c in (c for c in allowed if c is not None):
        if isinstance(c, Options):
            return "not-an-option"
        if c.low is not None:
            return c.low - 1
        return c.high + 1
    raise AssertionError(allowed)


def test_a_planted_bad_value_of_every_selective_field_is_refused_naming_its_flag():
    from notsure.jobs.selective.pipeline import SelectiveConfig

    table = SelectiveConfig._constraints
    assert {"folds", "seed", "epochs", "executor", "workers", "target_fpr", "delta",
            "strategy", "fpr_meaning", "exclusion_mode"} <= set(table)
    SelectiveConfig().validate()
    for field, allowed in table.items():
        value = bad_value(allowed)
        with pytest.raises(ConfigError) as caught:
            SelectiveConfig(**{field: value}).validate()
        message = str(caught.value)
        assert message.startswith(f"{flag(field)} must "), message
        assert message.endswith(f", got {value!r}" if isinstance(value, str)
                                else f", got {value}"), message
        assert "\n" not in message


def test_every_job_config_takes_its_defaults_and_shares_the_run_options():
    from notsure.jobs.ambiguous.pipeline import AmbiguousConfig
    from notsure.jobs.calibrate.run import CalibrateConfig
    from notsure.jobs.compare.pipeline import CompareConfig
    from notsure.jobs.embeddings.pipeline import EmbeddingsConfig
    from notsure.jobs.run_options import CROSS_FIT_CONSTRAINTS, RUN_CONSTRAINTS
    from notsure.jobs.selective.pipeline import SelectiveConfig

    for config in (SelectiveConfig(), AmbiguousConfig(), CompareConfig(), EmbeddingsConfig(),
                   CalibrateConfig(scores="s.csv", labels="y.csv")):
        config.validate()
    for cls in (SelectiveConfig, AmbiguousConfig, CompareConfig, EmbeddingsConfig):
        assert all(cls._constraints[k] is v for k, v in RUN_CONSTRAINTS.items()), cls
    for cls in (SelectiveConfig, AmbiguousConfig):
        assert all(cls._constraints[k] is v for k, v in CROSS_FIT_CONSTRAINTS.items()), cls
    with pytest.raises(ConfigError, match=r"^--folds must be an integer >= 2, got 1$"):
        CompareConfig(cv_folds=1).validate()
    with pytest.raises(ConfigError, match=r"^--folds must be an integer >= 2, got 1$"):
        EmbeddingsConfig(n_folds=1).validate()
    with pytest.raises(ConfigError, match=r"^--workers must be an integer >= 1, got 0$"):
        AmbiguousConfig(workers=0).validate()


# -- the command line -----------------------------------------------------------------------------

def test_the_cli_refuses_a_bad_option_with_one_line_naming_the_flag(tmp_path, capsys):
    from notsure.cli.main import main

    out = tmp_path / "run"
    assert main(["selective", "--folds", "1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["notsure: error: --folds must be an integer >= 2, got 1"]
    assert not out.exists()


def test_the_parser_offers_the_owners_choices_without_importing_them():
    """Choices owned by heavy modules (the jobs, scikit-learn's families) are read from their
    owners only when the option is given or help is shown."""
    code = ("import sys; from notsure.cli.main import build_parser; p = build_parser(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules)); "
            "print(p.parse_args(['ambiguous', '--rank-by', 'margin']).rank_by)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": SRC}).stdout.split()
    assert out == ["[]", "margin"]

    from notsure.analysis.ambiguity import RANK_BY
    from notsure.cli.main import build_parser
    from notsure.decisions import MEANINGS, RULES
    from notsure.jobs.selective.pipeline import EXCLUSION_MODES
    from notsure.models.runtime import BACKENDS

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    choices = {(name, a.dest): tuple(a.choices) for name, sub in commands.items()
               for a in sub._actions if a.choices is not None}
    assert choices[("selective", "exclusion_mode")] == EXCLUSION_MODES
    assert choices[("selective", "strategy")] == RULES
    assert choices[("selective", "fpr_meaning")] == MEANINGS
    assert choices[("ambiguous", "rank_by")] == RANK_BY
    assert choices[("predict", "backend")] == BACKENDS
    with pytest.raises(SystemExit):
        build_parser().parse_args(["selective", "--exclusion-mode", "fix"])
