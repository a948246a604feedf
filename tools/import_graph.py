"""The import graph of the project's packages, read from the source, and its cycles.

``python -m tools.import_graph`` (from the repository root) prints how many modules and
imports ``harness/`` and ``models/`` hold and every cycle among them; it exits 1 when there
is one. Every import statement counts, those inside functions too: an import deferred into a
function still ties the two modules together, it only hides the knot from the interpreter.
``--top-level-only`` counts module-level statements alone (what the interpreter would meet
on import), ``--edges`` prints the graph itself.

An edge goes to the module an import names: ``from a.b import c`` to ``a.b.c`` when that is a
module, else to ``a.b``; ``import a.b.c`` to ``a.b.c``. The parent packages that Python
runs first (``a`` and ``a.b`` for ``import a.b.c``) are not edges, or every package whose
``__init__`` re-exports its own modules would be a cycle. A cycle is a strongly connected
component of more than one module; one shortest loop through it is printed as the witness.
Standard library only, and nothing it reads is imported.
"""
import argparse
import ast
import os
import sys
from collections import deque
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("harness", "models")

#: An import edge: (importer, imported, inside a function or class body).
Edge = Tuple[str, str, bool]


def module_files(root: str = ROOT, packages: Sequence[str] = PACKAGES) -> Dict[str, str]:
    """Dotted module name -> file, for every ``.py`` file under ``packages`` (``__init__`` is the package)."""
    found: Dict[str, str] = {}
    for package in packages:
        for dirpath, dirnames, files in os.walk(os.path.join(root, package)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                parts = os.path.relpath(os.path.join(dirpath, name), root)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join(parts)] = os.path.join(dirpath, name)
    return found


def _statements(tree: ast.Module) -> Iterator[Tuple[ast.stmt, bool]]:
    """Every import statement of ``tree`` and whether it sits inside a function or class."""
    stack = [(node, False) for node in reversed(tree.body)]
    while stack:
        node, nested = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, nested
            continue
        inner = nested or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
        stack.extend((child, inner) for child in reversed(list(ast.iter_child_nodes(node))))


def _known(name: str, modules: Dict[str, str]) -> Optional[str]:
    """``name`` or its longest prefix that is one of ``modules``; None outside them."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def _targets(node: ast.stmt, importer: str, modules: Dict[str, str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            found = _known(alias.name, modules)
            if found:
                yield found
        return
    assert isinstance(node, ast.ImportFrom)
    base = node.module or ""
    if node.level:  # relative: resolved against the importer's package
        package = importer if os.path.basename(modules[importer]) == "__init__.py" else importer.rpartition(".")[0]
        anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join(anchor + ([base] if base else []))
    for alias in node.names:
        submodule = base + "." + alias.name
        found = submodule if submodule in modules else _known(base, modules)
        if found:
            yield found


def edges(modules: Dict[str, str], top_level_only: bool = False) -> List[Edge]:
    """The import edges among ``modules`` (no self-edges, no repeats), sorted."""
    out: Set[Edge] = set()
    for name, path in modules.items():
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=path)
        for node, nested in _statements(tree):
            if nested and top_level_only:
                continue
            for target in _targets(node, name, modules):
                if target != name:
                    out.add((name, target, nested))
    # an edge made at both levels is a module-level edge
    top = {(a, b) for a, b, nested in out if not nested}
    return sorted(e for e in out if not e[2] or (e[0], e[1]) not in top)


def cycles(graph_edges: Sequence[Edge]) -> List[List[str]]:
    """The strongly connected components of more than one module, each sorted; sorted (Tarjan)."""
    succ: Dict[str, List[str]] = {}
    for a, b, _ in graph_edges:
        succ.setdefault(a, []).append(b)
        succ.setdefault(b, [])
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    found: List[List[str]] = []
    for start in sorted(succ):
        if start in index:
            continue
        work = [(start, iter(succ[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:  # iterative, so a deep graph cannot hit the recursion limit
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(succ[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


def witness(component: Sequence[str], graph_edges: Sequence[Edge]) -> List[str]:
    """One shortest loop through the component's first module: ``[a, b, ..., a]``."""
    members = set(component)
    succ: Dict[str, List[str]] = {}
    for a, b, _ in graph_edges:
        if a in members and b in members:
            succ.setdefault(a, []).append(b)
    start = component[0]
    came: Dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(succ.get(node, ())):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return list(reversed(path)) + [start]
            if child not in came:
                came[child] = node
                queue.append(child)
    return list(component)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.import_graph", description=__doc__.split("\n")[0])
    parser.add_argument("packages", nargs="*", default=list(PACKAGES), help="top-level packages (default: %(default)s)")
    parser.add_argument("--top-level-only", action="store_true", help="ignore imports inside functions and classes")
    parser.add_argument("--edges", action="store_true", help="print every edge (F: made inside a function)")
    args = parser.parse_args(argv)
    modules = module_files(ROOT, args.packages)
    graph = edges(modules, args.top_level_only)
    if args.edges:
        for a, b, nested in graph:
            print("%s %s -> %s" % ("F" if nested else " ", a, b))
    found = cycles(graph)
    print("%d modules, %d imports (%d inside functions) over %s; %d cycles" % (
        len(modules), len(graph), sum(1 for e in graph if e[2]), ", ".join(args.packages), len(found)))
    for component in found:
        by_edge = {(a, b): nested for a, b, nested in graph}
        loop = witness(component, graph)
        steps = " -> ".join(loop[0:1] + ["%s%s" % (b, " (in a function)" if by_edge.get((a, b)) else "")
                                         for a, b in zip(loop, loop[1:])])
        print("cycle of %d modules: %s\n  e.g. %s" % (len(component), ", ".join(component), steps))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
