"""The tree passes the linter CI runs (ruff, pyproject.toml), and the Makefile names only
targets it defines."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_passes_on_the_tree():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
    assert "make lint" in (ROOT / ".ci" / "run").read_text()


def test_the_makefile_names_only_targets_it_has():
    text = (ROOT / "Makefile").read_text()
    defined = set(re.findall(r"^([A-Za-z][\w.-]*):", text, flags=re.M)) - {".PHONY"}
    phony = set(re.search(r"^\.PHONY:(.*)$", text, flags=re.M).group(1).split())
    assert phony <= defined, sorted(phony - defined)
    assert {"demo", "test", "lint"} <= defined
