"""The docs' lists of code facts against the registries and the tree: the module map, the methods, the backbone
kinds, the pretraining recipes and the built-in tasks (a doc that names them must name exactly what the code has)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _text(name: str) -> str:
    return (ROOT / name).read_text()


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else None]


def test_the_architecture_map_names_every_module():
    doc = _text("ARCHITECTURE.md")
    block = doc[doc.index("```\npetlbench/"):doc.index("```", doc.index("```\npetlbench/") + 3)]
    modules = [p for p in (ROOT / "petlbench").rglob("*.py") if p.name != "__init__.py" and p.name != "__main__.py"]
    folders = {p.parent.relative_to(ROOT / "petlbench").as_posix() for p in modules} - {"."}
    assert len(modules) > 60 and {"vl/data", "vl/models", "pretrain"} <= folders
    assert [p.relative_to(ROOT).as_posix() for p in modules if p.name not in block] == []
    assert [f for f in folders if f"  {f}/" not in block] == []  # each folder has its line


def test_the_readme_lists_every_registered_method():
    from petlbench.registry import METHODS

    methods = _section(_text("README.md"), "## Methods")
    listed = re.findall(r"^- `([\w-]+)`", methods, re.M)
    assert len(listed) == len(set(listed)) and set(listed) == set(METHODS.all())


def test_contributing_lists_every_backbone_kind():
    from petlbench.tracks import FAMILIES

    line = next(ln for ln in _text("CONTRIBUTING.md").splitlines() if "(backbone kinds:" in ln)
    listed = re.findall(r"`(\w+)`", line.split("(backbone kinds:")[1].split(")")[0])
    assert sorted(listed) == sorted(k for f in FAMILIES.all().values() for k in f.kinds)


def test_every_pretraining_recipe_the_docs_name_is_registered():
    from petlbench.pretrain.base import RECIPES

    docs = [_text(n) for n in ("README.md", "CONTRIBUTING.md", "ARCHITECTURE.md")]
    docs += [p.read_text() for p in (ROOT / "docs").glob("*.md")]
    named = {m for d in docs for m in re.findall(r"pretrain --data ([\w-]+)", d)}
    assert len(named) >= 3 and named <= set(RECIPES.all())
    block = _text("ARCHITECTURE.md")
    assert all(f"{type(r).__module__.rsplit('.', 1)[1]}.py" in block for r in RECIPES.all().values())


def test_the_task_tables_are_the_built_in_tasks():
    from petlbench.data.builtin import TASKS
    from petlbench.vl.data.tasks import TASKS as VL_TASKS

    rows = re.findall(r"^\| `([\w-]+)`(?: \(default\))? \| (\w+) \| (\d+) \|", _text("docs/protocol.md"), re.M)
    assert rows == [(t.name, t.group, str(len(t.classes))) for t in TASKS]
    vl = re.findall(r"^\| `(shapes-[\w-]+)` \|", _text("docs/vl.md"), re.M)
    assert vl == [t.name for t in VL_TASKS]
