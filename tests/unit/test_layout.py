"""The package's layout rules, checked on its source: no import cycle (imports inside functions count), and the
vision side (data/, models/) never imports the vision-language side (vl/); only the two routers know both tracks."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = ("petlbench", "methods", *rel.parts[1:]) if rel.parts[0] == "methods" else rel.parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere in its source (module level and inside functions)."""
    files = [*ROOT.joinpath("petlbench").rglob("*.py"), *ROOT.joinpath("methods").rglob("*.py")]
    sources = {_module(p): p for p in files}
    graph = {}
    for name, path in sources.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("petlbench"):
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in sources else node.module
                         for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("petlbench")}
        graph[name] = {d for d in deps if d in sources and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_counting_imports_inside_functions():
    graph = import_graph()
    assert len(graph) > 50 and "petlbench.engine.runner" in graph["petlbench.engine.tune"]
    assert cycles(graph) == []


def test_vision_code_never_imports_vision_language_code():
    graph = import_graph()
    vision = [m for m in graph if m.startswith(("petlbench.data", "petlbench.models")) and m != "petlbench.datasets"]
    assert len(vision) >= 10
    assert {m: sorted(d for d in graph[m] if d.startswith("petlbench.vl")) for m in vision
            if any(d.startswith("petlbench.vl") for d in graph[m])} == {}


def test_only_the_routers_the_vl_package_and_the_recipes_name_both_tracks():
    """Outside vl/ and methods/ (VL plumbing), only datasets.py and tracks.py import the vl package, and the
    pretraining recipes that build VL models or their data (pretrain/)."""
    graph = import_graph()
    importers = {m for m, deps in graph.items() if any(d.startswith("petlbench.vl") for d in deps)
                 and not m.startswith(("petlbench.vl", "petlbench.methods", "petlbench.pretrain"))}
    assert importers <= {"petlbench.datasets", "petlbench.tracks"}, importers


# each layer may import only itself and the layers before it (imports inside functions count)
LOW = ("petlbench.errors", "petlbench.hub", "petlbench.config", "petlbench.data", "petlbench.models",
       "petlbench.vl", "petlbench.methods")
HIGH = ("petlbench.engine", "petlbench.pretrain", "petlbench.results", "petlbench.cli", "petlbench.progress")


def test_no_import_runs_back_up_the_layers():
    """Data, models, the VL models and data, and methods never import the engine, pretraining, results or the CLI
    (a helper many layers use, such as ``models.measure``, lives low)."""
    graph = import_graph()
    up = {m: sorted(d for d in deps if d.startswith(HIGH)) for m, deps in graph.items() if m.startswith(LOW)}
    assert len(up) > 40 and {m: d for m, d in up.items() if d} == {}


def test_the_engine_names_no_pretraining_recipe():
    from petlbench.pretrain.base import RECIPES

    names = [f'"{n}"' for n in RECIPES.all()]
    engine = [p for p in ROOT.joinpath("petlbench", "engine").rglob("*.py")]
    assert len(engine) > 5 and len(names) >= 4
    assert [(p.name, n) for p in engine for n in names if n in p.read_text()] == []
