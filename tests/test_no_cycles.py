"""No import cycles anywhere in the project: the library, the app, train, bench and app.py.

tests/test_layering.py guards the library; this runs its import reader over every door as well
(imports inside functions count: a lazy import that closes a ring only moves the failure to run time).
"""

from __future__ import annotations

from pathlib import Path

from test_layering import cycles, import_graph, module_name

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("gptlab", "gptlab_app", "train", "bench")


def project_sources(root: Path = REPO) -> dict[str, tuple[Path, str]]:
    """Module name -> (file, source) for app.py and every module of the project's packages."""
    files = [root / "app.py", *(p for package in PACKAGES for p in sorted((root / package).rglob("*.py")))]
    return {module_name(p, root): (p, p.read_text(encoding="utf-8")) for p in files if "__pycache__" not in p.parts}


def test_the_project_has_no_import_cycle():
    graph = import_graph(project_sources())
    assert {"app", "gptlab_app", "gptlab.generate.__main__", "train.loop", "bench.training"} <= set(graph)
    assert cycles(graph) == []


def test_a_planted_cycle_between_bench_sections_is_caught():
    """The ring this project had: bench.matmul read the sizes from bench.training, which read gflops from it."""
    sources = project_sources()
    path, text = sources["bench.matmul"]
    sources["bench.matmul"] = (path, f"{text}\ndef sizes():\n    from .training import gptlab_step\n")
    assert cycles(import_graph(sources)) == [["bench.matmul", "bench.training"]]
