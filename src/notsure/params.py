"""Settings checked from a table: each config declares, per field, the values it accepts, and
:func:`validate` refuses the first field outside them with one line naming its flag.

A small cousin of scikit-learn's ``_parameter_constraints``::

    _constraints: ClassVar[dict] = {
        "folds": [Interval(Integral, 2, None)],              # an integer >= 2
        "target_fpr": [Interval(Real, 0, 1, closed="neither")],  # a number in (0, 1)
        "epochs": [None, Interval(Integral, 1, None)],       # not given, or >= 1
        "strategy": [Options(RULES)],
    }

A field is valid when it satisfies any constraint of its list; ``None`` in the list accepts
``None`` (an option not given). Checks that involve several fields at once stay code in the
config's ``validate``, after the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

from notsure.errors import ConfigError

#: Which ends of an :class:`Interval` belong to it.
CLOSED = ("both", "left", "right", "neither")


class Interval:
    """Numbers of ``kind`` (``Integral`` or ``Real``; never a bool) between ``low`` and ``high``
    (``None``: unbounded on that side); ``closed`` says which ends are included."""

    def __init__(self, kind: type, low: float | None, high: float | None,
                 closed: str = "both") -> None:
        if kind not in (Integral, Real):
            raise TypeError(f"Interval kind must be Integral or Real, got {kind!r}")
        if closed not in CLOSED:
            raise ValueError(f"Interval closed must be one of {', '.join(CLOSED)}, got {closed!r}")
        if low is None and high is None:
            raise ValueError("Interval needs a low or a high end")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and not (value >= self.low if left else value > self.low):
            return False
        return self.high is None or (value <= self.high if right else value < self.high)

    @property
    def text(self) -> str:
        """What ``--flag must ...`` says: "be an integer >= 2", "lie in (0, 1)"."""
        noun = "an integer" if self.kind is Integral else "a number"
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.high is None:
            return f"be {noun} {'>=' if left else '>'} {self.low}"
        if self.low is None:
            return f"be {noun} {'<=' if right else '<'} {self.high}"
        span = f"{'[' if left else '('}{self.low}, {self.high}{']' if right else ')'}"
        return f"lie in {span}" if self.kind is Real else f"be {noun} in {span}"


class Options:
    """One of a fixed set of values (kept in the order given)."""

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = tuple(values)
        if not self.values:
            raise ValueError("Options needs at least one value")

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.values
        except (TypeError, ValueError):  # e.g. an array, whose == gives no single truth
            return False

    @property
    def text(self) -> str:
        """What ``--flag must ...`` says: "be one of routed, min-fold, min-member"."""
        return f"be one of {', '.join(str(v) for v in self.values)}"


Constraint = Interval | Options


def flag(field: str) -> str:
    """The command-line flag of a config field: ``target_fpr`` -> ``--target-fpr``."""
    return "--" + field.replace("_", "-")


def shown(value: Any) -> str:
    """A value as a message shows it: strings quoted, numbers as typed."""
    return repr(value) if isinstance(value, str) else str(value)


def problem(value: Any, allowed: list[Constraint | None]) -> str | None:
    """Why ``value`` satisfies none of ``allowed`` ("must ..."), or None when it is valid."""
    if value is None and None in allowed:
        return None
    rules = [c for c in allowed if c is not None]
    if any(c.accepts(value) for c in rules):
        return None
    return f"must {' or '.join(c.text for c in rules)}, got {shown(value)}"


def validate(config: Any, constraints: Mapping[str, list[Constraint | None]],
             names: Mapping[str, str] | None = None) -> None:
    """Check every field of ``constraints`` on ``config``, in table order; ConfigError on the
    first one out of range: ``--folds must be an integer >= 2, got 1``.

    A field is named by its flag (:func:`flag`) unless ``names`` gives another name (a flag
    spelt otherwise, or a setting of the Python API only, named as its field).
    """
    names = names or {}
    for field, allowed in constraints.items():
        why = problem(getattr(config, field), allowed)
        if why is not None:
            raise ConfigError(f"{names.get(field, flag(field))} {why}")
