"""The library's layers point one way: core <- inside, figures <- classroom <- the doors (app, train).

Every import is read with ``ast`` from the sources, the ones inside functions too, relative ones
resolved, and ``importlib.import_module("...")`` with a literal name counted as an import:

- the core (``gptlab/*.py``, ``gptlab/models/``, ``gptlab/generate/``, ...) imports no layer above it;
- ``gptlab.inside`` imports the core only; ``gptlab.figures`` too (figures take tensors and strings);
- ``gptlab.classroom`` may use all three;
- nothing under ``gptlab/`` imports gradio, the app (``app``, ``gptlab_app``), ``train``, ``bench``
  or a command line (a ``__main__`` module), and the library has no import cycle;
- in the app, a tab (``gptlab_app/tabs/<tab>.py``) never imports another tab, only ``build_app``
  (``gptlab_app``) puts the tabs together, and the app never imports ``train``, ``bench`` or ``tests``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("inside", "figures", "classroom")
MAY_IMPORT = {
    "core": {"core"},
    "inside": {"core", "inside"},
    "figures": {"core", "figures"},
    "classroom": {"core", "inside", "figures", "classroom"},
}
NEVER_IN_THE_LIBRARY = ("gradio", "gradio_client", "app", "gptlab_app", "train", "bench", "tests")


def module_name(path: Path, root: Path = REPO) -> str:
    """'gptlab/inside/explore.py' -> 'gptlab.inside.explore'; a package's __init__.py is the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported module) for every import in ``source``, at any depth, relative ones made absolute.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module in ``known``.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((node.lineno, target if target in known else base))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return found


def layer_of(module: str) -> str:
    """'core', 'inside', 'figures' or 'classroom' for a gptlab module; the top-level name for anything else."""
    parts = module.split(".")
    if parts[0] != "gptlab":
        return parts[0]
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def library_sources(root: Path = REPO) -> dict[str, tuple[Path, str]]:
    return {module_name(p, root): (p, p.read_text(encoding="utf-8"))
            for p in sorted((root / "gptlab").rglob("*.py")) if "__pycache__" not in p.parts}


def import_graph(sources: dict[str, tuple[Path, str]]) -> dict[str, list[tuple[int, str]]]:
    known = set(sources)
    return {module: imports_of(text, module, path.name == "__init__.py", known)
            for module, (path, text) in sources.items()}


def violations(graph: dict[str, list[tuple[int, str]]]) -> list[str]:
    """One line per import that points the wrong way, naming the file, the line and the rule."""
    out = []
    for module, imported in graph.items():
        mine = layer_of(module)
        for line, target in imported:
            theirs = layer_of(target)
            if target.split(".")[-1] == "__main__":
                out.append(f"{module}:{line} imports the command line {target}: the library never imports a CLI")
            elif target.startswith("gptlab.") or target == "gptlab":
                if theirs not in MAY_IMPORT[mine]:
                    out.append(f"{module}:{line} ({mine}) imports {target} ({theirs}): {mine} may import only "
                               f"{', '.join(sorted(MAY_IMPORT[mine]))}")
            elif theirs in NEVER_IN_THE_LIBRARY:
                out.append(f"{module}:{line} imports {target}: nothing under gptlab/ may import {theirs}")
    return out


def cycles(graph: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """Groups of library modules that import each other in a ring (strongly connected, Tarjan), sorted."""
    edges = {m: sorted({t for _, t in imported if t in graph and t != m}) for m, imported in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for nxt in edges[module]:
            if nxt not in index:
                visit(nxt)
                low[module] = min(low[module], low[nxt])
            elif nxt in stack:
                low[module] = min(low[module], index[nxt])
        if low[module] == index[module]:  # the root of a group: pop it
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return sorted(found)


def test_every_library_import_points_down_a_layer():
    graph = import_graph(library_sources())
    assert {layer_of(m) for m in graph} == {"core", *LAYERS}  # the checker sees every layer
    assert violations(graph) == []


def test_the_library_has_no_import_cycle():
    assert cycles(import_graph(library_sources())) == []


def test_the_core_stays_where_the_map_says():
    """The layers' own folders hold their modules; the core is everything else under gptlab/."""
    graph = import_graph(library_sources())
    core = sorted(m for m in graph if layer_of(m) == "core")
    assert {"gptlab.models.attention", "gptlab.hooks", "gptlab.generate", "gptlab.snapshots"} <= set(core)
    assert {"gptlab.inside.explore", "gptlab.figures.attention", "gptlab.classroom.catalog"} <= set(graph)


def readme_map() -> dict[str, list[str]]:
    """The README's "Where things are" block: {top-level entry: names listed under it} (paths, as written)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("\n## Where things are\n", 1)[1].split("```\n", 2)[1]
    entries: dict[str, list[str]] = {}
    top = ""
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        names = line.strip().split("  ", 1)[0].split()  # the names, then two spaces, then what they are
        if indent == 0:
            for top in names:
                entries[top] = []
        elif indent == 2:  # deeper lines continue a description
            entries[top] += names
    return entries


def test_the_readme_map_names_every_part_of_the_library_and_nothing_else():
    entries = readme_map()
    listed = {f"gptlab/{name}".rstrip("/") for name in entries["gptlab/"]}
    library = {p.relative_to(REPO).as_posix() for p in (REPO / "gptlab").iterdir()
               if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert library - listed == set(), "modules or packages the README's map does not name"
    assert [path for path in [*listed, *entries] if not (REPO / path).exists()] == []
    assert {"gptlab/inside", "gptlab/figures", "gptlab/classroom"} <= listed and "gptlab_app/" in entries


PLANTED = [  # (module that gets the line, line, what the report must say)
    ("gptlab.hooks", "import gradio as gr", "nothing under gptlab/ may import gradio"),
    ("gptlab.checkpoint", "def f():\n    from gptlab.inside.explore import attention_view", "(core) imports"),
    ("gptlab.models.gpt", "from ..figures import attention_heatmap", "(core) imports gptlab.figures"),
    ("gptlab.data", "from gptlab import classroom", "(core) imports gptlab.classroom"),
    ("gptlab.figures.attention", "from ..inside.heads import HeadLabel", "(figures) imports gptlab.inside.heads"),
    ("gptlab.inside.lens", "from gptlab.figures import charts", "(inside) imports gptlab.figures.charts"),
    ("gptlab.inside.explore", "import importlib\nimportlib.import_module('gptlab_app.common')", "gptlab_app"),
    ("gptlab.classroom.live", "from train.config import TrainConfig", "may import train"),
    ("gptlab.classroom.lessons.presets", "from .__main__ import main", "the library never imports a CLI"),
]


@pytest.mark.parametrize(("module", "line", "said"), PLANTED, ids=[p[1].splitlines()[-1] for p in PLANTED])
def test_a_planted_wrong_import_is_caught(module, line, said):
    """The checker itself: one wrong import added to a real module (at the top or inside a function)."""
    sources = library_sources()
    path, text = sources[module]
    sources[module] = (path, f"{text}\n{line}\n")
    found = violations(import_graph(sources))
    assert len(found) == 1 and said in found[0], found


def test_a_planted_cycle_is_caught():
    sources = library_sources()
    path, text = sources["gptlab.errors"]
    sources["gptlab.errors"] = (path, f"{text}\ndef f():\n    from .data import TokenSplits\n")  # data imports errors
    assert cycles(import_graph(sources)) == [["gptlab.data", "gptlab.errors"]]


NEVER_IN_THE_APP = ("app", "train", "bench", "tests")


def app_sources(root: Path = REPO) -> dict[str, tuple[Path, str]]:
    return {module_name(p, root): (p, p.read_text(encoding="utf-8"))
            for p in sorted((root / "gptlab_app").rglob("*.py")) if "__pycache__" not in p.parts}


def app_violations(graph: dict[str, list[tuple[int, str]]]) -> list[str]:
    """One line per import in the app that points the wrong way: between tabs, or from a shared module to a tab."""
    out = []
    for module, imported in graph.items():
        for line, target in imported:
            if target.startswith("gptlab_app.tabs.") and target != module:
                if module.startswith("gptlab_app.tabs"):
                    out.append(f"{module}:{line} imports the tab {target}: tabs share through gptlab_app's "
                               "common modules, never each other")
                elif module != "gptlab_app":
                    out.append(f"{module}:{line} imports the tab {target}: only build_app (gptlab_app) uses the tabs")
            elif target.split(".")[0] in NEVER_IN_THE_APP:
                out.append(f"{module}:{line} imports {target}: the app never imports {target.split('.')[0]}")
    return out


def test_the_app_tabs_stand_alone():
    graph = import_graph(app_sources())
    assert {"gptlab_app", "gptlab_app.common", "gptlab_app.tabs.attention", "gptlab_app.tabs.lessons"} <= set(graph)
    assert app_violations(graph) == []


APP_PLANTED = [
    ("gptlab_app.tabs.closer", "from . import attention", "tabs share through"),
    ("gptlab_app.tabs.step", "def f():\n    from gptlab_app.tabs.generate import stream", "tabs share through"),
    ("gptlab_app.common", "from .tabs import lessons", "only build_app"),
    ("gptlab_app.pickers", "from train.config import TrainConfig", "never imports train"),
]


@pytest.mark.parametrize(("module", "line", "said"), APP_PLANTED, ids=[p[1].splitlines()[-1] for p in APP_PLANTED])
def test_a_planted_import_between_tabs_is_caught(module, line, said):
    sources = app_sources()
    path, text = sources[module]
    sources[module] = (path, f"{text}\n{line}\n")
    found = app_violations(import_graph(sources))
    assert len(found) == 1 and said in found[0], found
