"""Dependencies point one way: knnclip_core never imports prefect, mlflow or the layers above it."""
import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "knnclip_core"
FORBIDDEN = {"prefect", "prefect_dask", "mlflow", "flows", "registry", "dashboards"}


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
