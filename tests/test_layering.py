"""The import graph stays one-way: runner -/-> analysis, analysis -/-> torch, commands import
heavy things only when they run, the zoo -/-> the harness (the model sources included), and no
cycle anywhere (``python -m tools.import_graph``). Checked on the source (every import
statement, function-level ones included) and by importing in a fresh interpreter."""
import ast
import os
import subprocess
import sys

import pytest

from tools import import_graph

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY_ANALYSIS = ("pandas", "scipy", "matplotlib", "orjson")
SHARED = ("harness.record.schema", "harness.record.parts", "harness.record.store", "harness.vocab", "harness.fileio",
          "harness.measures",
          "harness.precisions", "harness.units", "harness._zoo", "harness.environments", "harness.scenario.gate_config",
          "harness.scenario.model_options", "harness.scenario.requirements", "harness.scenario.settings",
          "harness.shard.split", "harness.shard.merge")


def _modules(folder):
    for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, ROOT), path


def _imports(path, top_level_only=False):
    tree = ast.parse(open(path, encoding="utf-8").read())
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            for alias in node.names:
                yield node.module + "." + alias.name


def _hits(imported, forbidden):
    return [m for m in imported if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize("folder", ["runner", "sources"])  # the sources run inside the runner's environments
def test_the_runner_never_imports_the_analysis_side_or_its_libraries(folder):
    for rel, path in _modules(os.path.join("harness", folder)):
        bad = _hits(_imports(path), ("harness.analysis", "harness.commands", "harness.cli") + HEAVY_ANALYSIS)
        assert not bad, "%s imports %s" % (rel, bad)


def test_the_analysis_side_never_imports_torch_the_runner_or_the_zoo():
    for rel, path in _modules(os.path.join("harness", "analysis")):
        bad = _hits(_imports(path), ("torch", "harness.runner", "models", "numpy.testing"))
        assert not bad, "%s imports %s" % (rel, bad)


@pytest.mark.parametrize("module", SHARED)
def test_shared_modules_need_only_the_standard_library(module):
    path = os.path.join(ROOT, *module.split(".")) + ".py"
    bad = _hits(_imports(path), ("torch", "numpy", "models", "harness.runner", "harness.analysis") + HEAVY_ANALYSIS)
    assert not bad, "%s imports %s" % (module, bad)


def test_the_zoo_imports_neither_the_harness_nor_the_sources():
    for rel, path in _modules("models"):
        bad = _hits(_imports(path), ("harness",))  # harness.sources included
        assert not bad, "%s imports %s" % (rel, bad)


def test_the_import_graph_of_harness_and_models_has_no_cycle():
    graph = import_graph.edges(import_graph.module_files(ROOT))
    found = import_graph.cycles(graph)
    assert not found, "import cycles (python -m tools.import_graph):\n" + "\n".join(
        " -> ".join(import_graph.witness(c, graph)) for c in found)
    assert any(nested for _, _, nested in graph)  # function-level imports are in the graph


def test_the_cycle_finder_sees_a_cycle_made_inside_a_function(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pkg.a import A\n")  # a package re-exporting its module: no cycle
    (pkg / "a.py").write_text("A = 1\n\n\ndef late():\n    from pkg import b\n    return b\n")
    (pkg / "b.py").write_text("import pkg.c\n")
    (pkg / "c.py").write_text("from . import a\n")
    graph = import_graph.edges(import_graph.module_files(str(tmp_path), ["pkg"]))
    assert ("pkg.a", "pkg.b", True) in graph and ("pkg.c", "pkg.a", False) in graph
    assert import_graph.cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert import_graph.witness(["pkg.a", "pkg.b", "pkg.c"], graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    assert import_graph.cycles(import_graph.edges(import_graph.module_files(str(tmp_path), ["pkg"]), True)) == []


def test_the_import_graph_command_prints_no_cycle():
    proc = subprocess.run([sys.executable, "-m", "tools.import_graph"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("; 0 cycles"), proc.stdout


def test_command_modules_import_nothing_heavy_at_the_top():
    for rel, path in _modules(os.path.join("harness", "commands")):
        bad = _hits(_imports(path, top_level_only=True),
                    ("torch", "numpy", "models", "harness.runner", "harness.analysis") + HEAVY_ANALYSIS)
        assert not bad, "%s imports %s at the top" % (rel, bad)


def _fresh_import(code):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_building_the_command_line_loads_neither_torch_nor_pandas():
    proc = _fresh_import("import sys; from harness.cli import build_parser; build_parser(); "
                         "print(sorted(m for m in ('torch', 'pandas', 'scipy', 'matplotlib', 'numpy') "
                         "if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_zoo_imports_without_the_harness_and_the_sources():
    proc = _fresh_import("import sys, models; models.list_models(); "
                         "print(sorted(m for m in sys.modules if m == 'harness' or m.startswith('harness.')))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_importing_the_analysis_side_loads_no_torch():
    pytest.importorskip("pandas")
    proc = _fresh_import("import sys, harness.analysis.gate, harness.analysis.report, harness.analysis.load; "
                         "print('torch' in sys.modules)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
