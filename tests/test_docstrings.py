"""The public classes' numpydoc docstrings: their examples run, and every parameter is documented.

The examples are doctests on synthetic data (no data files); each class's run takes a few seconds.
"""

from __future__ import annotations

import doctest
import inspect
import re

import pytest

from notsure.decisions.thresholds import NeymanPearsonThresholds
from notsure.models.cnn_classifier import CNNClassifier
from notsure.selective_classifier import SelectiveClassifier

CLASSES = [SelectiveClassifier, NeymanPearsonThresholds, CNNClassifier]
SECTIONS = ("Parameters", "Attributes", "Examples")


def sections(doc: str) -> dict[str, str]:
    """The numpydoc sections of ``doc``: header (a line underlined with dashes) -> body."""
    lines = inspect.cleandoc(doc).splitlines()
    starts = [i for i in range(len(lines) - 1)
              if lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip())
              and len(lines[i + 1].strip()) == len(lines[i].strip())]
    out = {}
    for k, i in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(lines)
        out[lines[i].strip()] = "\n".join(lines[i + 2:end])
    return out


def documented_parameters(section: str) -> set[str]:
    """Names of the entries (``name : type`` or ``a, b : type``) of a Parameters section."""
    names = set()
    for line in section.splitlines():
        m = re.match(r"(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s*:", line)  # entries are not indented
        if m:
            names.update(n.strip().lstrip("*") for n in m.group(1).split(","))
    return names


def init_parameters(cls: type) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_examples_run(cls):
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(cls):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 1, f"{cls.__name__}: no doctest example found"
    assert result.failed == 0, f"{cls.__name__}: {result.failed} doctest examples failed"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_has_numpydoc_sections(cls):
    found = sections(cls.__doc__ or "")
    missing = [name for name in SECTIONS if name not in found]
    assert missing == [], f"{cls.__name__}: no {missing} section (a header underlined with -)"
    assert ">>>" in found["Examples"]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_init_parameter_is_documented(cls):
    documented = documented_parameters(sections(cls.__doc__ or "").get("Parameters", ""))
    undocumented = [name for name in init_parameters(cls) if name not in documented]
    assert undocumented == [], f"{cls.__name__}: parameters not in its docstring: {undocumented}"
    unknown = sorted(documented - set(init_parameters(cls)))
    assert unknown == [], f"{cls.__name__}: documents parameters __init__ lacks: {unknown}"


def test_the_checks_see_a_missing_section_and_an_undocumented_parameter():
    doc = """Summary.

    Parameters
    ----------
    alpha : float
        The rate.

    Examples
    --------
    >>> 1
    1
    """
    assert set(sections(doc)) == {"Parameters", "Examples"}
    assert documented_parameters(sections(doc)["Parameters"]) == {"alpha"}
