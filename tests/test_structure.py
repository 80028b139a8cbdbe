"""The package's structure: no import cycles, and one owner per selective run-folder file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import notsure

SRC = Path(notsure.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every ``notsure`` module -> the ``notsure`` modules it imports, at any depth (imports
    inside functions count: a lazy import hides a cycle, it does not remove it), plus modules
    named to ``importlib.import_module`` as string constants."""
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.fullmatch(r"notsure(\.\w+)+", node.value):
                    targets = [node.value]
            graph[name].update(t for t in targets if t in files and t != name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_notsure_modules():
    graph = import_graph()
    assert "notsure.deploy.predictor" in graph["notsure.deploy.folder"]  # sanity
    assert cycles(graph) == []


def test_selective_run_files_are_named_only_by_their_owner():
    """The selective run's split and score files are named (as string constants) in one module
    only; every other reader goes through :class:`notsure.deploy.folder.SelectiveRun`."""
    owner = SRC / "deploy" / "folder.py"
    named = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in ("split.json", "scores.npz"):
                named.setdefault(node.value, set()).add(path)
    assert named == {"split.json": {owner}, "scores.npz": {owner}}


def test_the_thresholds_file_is_named_once():
    """``thresholds.json`` (one format for calibrate, selective and SelectiveClassifier) is named
    by its format's owner alone."""
    named = {path for path in SRC.rglob("*.py")
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Constant) and node.value == "thresholds.json"}
    assert named == {SRC / "decisions" / "thresholds.py"}
