"""Dependencies point one way, floor by floor: knnclip_core (the library) < registry (MLflow) <
serving (the worker's registry-backed parts) < flows (Prefect) and dashboards < deploy. No floor
imports one above it, and no package's modules import each other in a cycle."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "knnclip_core"
FORBIDDEN = {"prefect", "prefect_dask", "mlflow", "flows", "registry", "serving", "dashboards"}


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_sources_import_nothing_above_them():
    offenders = {str(p.relative_to(CORE)): sorted(_imported_roots(p) & FORBIDDEN)
                 for p in CORE.rglob("*.py") if _imported_roots(p) & FORBIDDEN}
    assert offenders == {}


def test_importing_the_whole_library_loads_no_orchestration():
    code = ("import importlib, pkgutil, sys, knnclip_core\n"
            "for m in pkgutil.walk_packages(knnclip_core.__path__, 'knnclip_core.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted(r for r in {n.split('.')[0] for n in sys.modules} if r in %r))" % (FORBIDDEN,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _import_graph(root: Path = CORE) -> dict[str, set[str]]:
    """module of package `root` -> the modules of that package it imports (at any depth of its
    AST, so imports inside functions count too; `from pkg import name` resolves to pkg.name when
    that is a module)."""
    mods = {}
    for p in root.rglob("*.py"):
        parts = list(p.relative_to(CORE.parent).with_suffix("").parts)
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p

    def module_of(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        pkg = m if p.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(p.read_text(), str(p))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    head = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(head + ([node.module] if node.module else []))
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            graph[m] |= {t for t in map(module_of, names) if t.split(".")[0] == root.name and t != m}
    return graph


def _cycle_edges(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Edges a -> b that lie on a cycle (b reaches a)."""
    def reach(a):
        seen, stack = set(), [a]
        while stack:
            for y in graph.get(stack.pop(), ()):
                if y not in seen:
                    seen.add(y)
                    stack.append(y)
        return seen
    return sorted((a, b) for a in graph for b in graph[a] if a in reach(b))


def _unit(module: str) -> str:
    """The subpackage (or top-level module) of knnclip_core that a module belongs to."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycles_between_subpackages():
    graph = _import_graph()
    units: dict[str, set[str]] = {}
    for a, targets in graph.items():
        units.setdefault(_unit(a), set()).update(_unit(b) for b in targets if _unit(b) != _unit(a))
    assert _cycle_edges(units) == []


def test_no_import_cycles_between_modules():
    """Inside a package too (a package's __init__ may import its modules and they it)."""
    graph = _import_graph()
    own = {a: {b for b in targets if b != a.rpartition(".")[0] and a != b.rpartition(".")[0]}
           for a, targets in graph.items()}
    assert _cycle_edges(own) == []


def test_the_cycle_check_sees_a_cycle():
    assert _cycle_edges({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b"), ("b", "c"), ("c", "a")]


# Each floor above the library, and what it must never import (the floors above it, and the
# orchestrator it does not use). knnclip_core's own rule is FORBIDDEN, above.
FLOORS = {
    "registry": {"serving", "flows", "dashboards", "deploy", "prefect", "prefect_dask"},
    "serving": {"flows", "dashboards", "deploy", "prefect", "prefect_dask"},
    "flows": {"dashboards", "deploy"},
    "dashboards": {"flows", "deploy", "prefect", "prefect_dask"},
    "deploy": set(),
}


def test_every_floor_imports_only_the_floors_below_it():
    offenders = {}
    for floor, forbidden in FLOORS.items():
        for p in (REPO / floor).rglob("*.py"):
            bad = _imported_roots(p) & (forbidden | ({"deploy"} if floor != "deploy" else set()))
            if bad:
                offenders[str(p.relative_to(REPO))] = sorted(bad)
    assert offenders == {}


def test_no_import_cycles_between_modules_of_any_floor():
    """registry/, serving/, flows/, dashboards/ and deploy/ too (describe <-> eval_runs was one)."""
    found = {}
    for floor in FLOORS:
        graph = _import_graph(REPO / floor)
        own = {a: {b for b in targets if b != a.rpartition(".")[0] and a != b.rpartition(".")[0]}
               for a, targets in graph.items()}
        if _cycle_edges(own):
            found[floor] = _cycle_edges(own)
    assert found == {}
