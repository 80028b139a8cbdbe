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
    assert "notsure.deploy.predictor" in graph["notsure.deploy.selective_run"]  # sanity
    assert cycles(graph) == []


#: The package's layers, lowest first. A module may import its own layer and the ones below it,
#: never one above: the arrows of the import graph all point down.
LAYERS = (
    ("constants", "errors", "params"),
    ("io", "parallel"),
    ("metrics", "data"),
    ("analysis",),
    ("decisions",),
    ("models",),
    ("reports",),
    ("selective_classifier",),
    ("deploy", "tracking"),
    ("jobs",),
    ("serve",),
    ("cli", "__main__", ""),  # "": the package root, whose public names are imported lazily
)
JOB_PARTS = ("pipeline", "report", "run")


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else ""
    return next(i for i, names in enumerate(LAYERS) if part in names)


def test_every_notsure_module_has_a_layer():
    for module in import_graph():
        layer_of(module)  # raises StopIteration for a module outside LAYERS


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of a module from a higher layer than the importer's."""
    return sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                  if layer_of(b) > layer_of(a))


def test_no_import_points_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_sees_a_planted_upward_import():
    graph = import_graph()
    graph["notsure.io.run_folder"] = graph["notsure.io.run_folder"] | {"notsure.deploy.predictor"}
    assert upward_imports(graph) == ["notsure.io.run_folder -> notsure.deploy.predictor"]


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_serve_reaches_no_job():
    """The server runs a deployed run: nothing it imports, at any depth, is a job."""
    graph = import_graph()
    for module in (m for m in graph if m.startswith("notsure.serve")):
        assert not [m for m in reachable(graph, module) if m.startswith("notsure.jobs")], module


def test_every_job_has_a_pipeline_a_report_and_an_edge():
    """``jobs/<job>/``: ``pipeline`` (pure: it never opens a run folder), ``report`` and ``run``
    (the edge). Calibrate has no training pipeline: its computing is NeymanPearsonThresholds."""
    graph = import_graph()
    jobs = sorted({m.split(".")[2] for m in graph if m.count(".") >= 3
                   and m.startswith("notsure.jobs.")})
    assert jobs == ["ambiguous", "calibrate", "compare", "embeddings", "selective"]
    for job in jobs:
        parts = {m.split(".")[3] for m in graph if m.startswith(f"notsure.jobs.{job}.")}
        expected = {"report", "run"} if job == "calibrate" else set(JOB_PARTS)
        assert expected <= parts, job
        pipeline = SRC / "jobs" / job / "pipeline.py"
        if pipeline.exists():
            names = {n.id for n in ast.walk(ast.parse(pipeline.read_text(encoding="utf-8")))
                     if isinstance(n, ast.Name)}
            assert not names & {"RunFolder", "open"}, pipeline


def test_no_module_name_is_used_twice():
    """One name, one module: only ``jobs/<job>/{pipeline,report,run}.py`` share their names,
    as the parts every job has."""
    seen: dict[str, list[str]] = {}
    for path in SRC.rglob("*.py"):
        job_part = path.parent.parent.name == "jobs" and path.stem in JOB_PARTS
        if path.stem not in ("__init__", "__main__") and not job_part:
            seen.setdefault(path.stem, []).append(str(path.relative_to(SRC)))
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}


def test_no_function_is_longer_than_80_lines():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_every_run_file_is_named_only_by_the_registry():
    """Each file name of every folder format is a string constant in ``io/run_folder.py`` only,
    where ``RUN_FILES`` gives its kind and version; every reader and writer imports it."""
    from notsure.io.run_folder import RUN_FILES

    owner = SRC / "io" / "run_folder.py"
    named: dict[str, set[Path]] = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in RUN_FILES:
                named.setdefault(node.value, set()).add(path)
    assert named == {name: {owner} for name in RUN_FILES}
    tags = [f.tag for f in RUN_FILES.values()]
    assert len(set(tags)) == len(tags)


def test_a_run_records_the_format_tag_of_each_registered_file(tmp_path):
    from notsure.io.run_folder import METRICS_FILE, RUN_FILES, RunFolder, read_manifest

    with RunFolder("demo", tmp_path / "run", config={"a": 1}, seed=0) as run:
        run.write_json(METRICS_FILE, {"x": 1})
        run.write_text("notes.txt", "not a registered format")
        run.finish()
    formats = read_manifest(tmp_path / "run")["formats"]
    assert formats == {METRICS_FILE: RUN_FILES[METRICS_FILE].tag}
