"""Start-up: a command imports great_expectations and mlflow only when it uses them
(`python -X importtime`, and sys.modules after a real run in a fresh interpreter)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("great_expectations", "mlflow")


def _env(tmp_path) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "KNNCLIP_HOME": str(tmp_path / "ws")}


def _importtime_roots(argv: list[str], env: dict) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "knnclip_core.cli.main", *argv],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines()
            if line.startswith("import time:")}


@pytest.mark.parametrize("command", ["curate --help", "embed --help", "run --help", "serve --help"])
def test_help_of_a_command_imports_neither_great_expectations_nor_mlflow(command, tmp_path):
    roots = _importtime_roots(command.split(), _env(tmp_path))
    assert "knnclip_core" in roots and not set(HEAVY) & roots, sorted(set(HEAVY) & roots)


RUN = """
import json, sys
from knnclip_core.cli.main import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": sorted(m for m in {n.split('.')[0] for n in sys.modules} if m in %r)}))
""" % (HEAVY,)


def test_curate_and_memory_stats_run_without_them(tmp_path):
    """A real run, not only --help: curate (nothing to curate here: exit 2) and memory stats."""
    for argv in (["curate"], ["memory", "stats"], ["quarantine", "list"]):
        out = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True, text=True,
                             env=_env(tmp_path), cwd=REPO, timeout=300)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        assert res["loaded"] == [], (argv, res)
