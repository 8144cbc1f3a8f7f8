"""Helpers the fault scenarios and the reliability tests share: run `knnclip` in a child
process (optionally paused inside MLflow's schema creation), kill it with SIGKILL, and
read what the workspace holds afterwards. Only loopback addresses are ever used."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]

# Run in the child before knnclip: pauses (or slows) the CREATE TABLE statements sent to
# an MLflow SQLite file, so that a kill or a second process lands inside schema creation.
SCHEMA_HOOK = """
import os, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
_n = [0]
@event.listens_for(Engine, "after_cursor_execute")
def _hook(conn, cursor, statement, *a):
    if "mlflow.db" in str(conn.engine.url) and statement.lstrip().upper().startswith("CREATE TABLE"):
        _n[0] += 1
        if _n[0] == int(os.environ.get("KC_PAUSE_AT_TABLE", "0")):
            open(os.environ["KC_READY"], "w").close()
            time.sleep(600)
        time.sleep(float(os.environ.get("KC_TABLE_DELAY", "0")))
"""

MAIN = "from knnclip_core.cli.main import main; sys.exit(main(sys.argv[1:]))"
MLFLOW_DIRECT = ("from mlflow import MlflowClient; "
                 "MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1]).search_experiments()")


def child_env(home: Path, **extra: str) -> dict:
    """Environment of a child knnclip: this repo first on the path, the workspace at `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNNCLIP_", "MLFLOW_TRACKING_URI", "PREFECT_API"))}
    env.update({"PYTHONPATH": f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}", "KNNCLIP_HOME": str(home),
                "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "HF_HUB_OFFLINE": "1",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    env.update(extra)
    return env


def start(home: Path, argv: Sequence[str], code: str = MAIN, hook: bool = False, **env: str) -> subprocess.Popen:
    """Start `python -c <hook + code> argv` (default: `knnclip --home HOME argv`) in its own session."""
    if code == MAIN:
        argv = ["--home", str(home), *argv]
    src = "import sys\n" + (SCHEMA_HOOK if hook else "") + code
    return subprocess.Popen([sys.executable, "-c", src, *argv], cwd=str(REPO), env=child_env(home, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def run(home: Path, argv: Sequence[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """Run a child to the end; returns its CompletedProcess (stdout, stderr, returncode)."""
    p = start(home, argv, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(p)
        out, err = p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def kill(p: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it and anything it started) and reap it."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait()


def kill_in_schema_creation(home: Path, at_table: int, argv: Sequence[str] = ("releases", "list"),
                            code: str = MAIN, timeout: float = 120) -> bool:
    """Start a child, SIGKILL it right after its `at_table`-th CREATE TABLE in the MLflow store.
    Returns False when the child ended before reaching that point (nothing to kill)."""
    ready = home.parent / f".ready-{os.getpid()}-{at_table}-{time.monotonic_ns()}"
    p = start(home, argv, code=code, hook=True, KC_PAUSE_AT_TABLE=str(at_table), KC_READY=str(ready))
    deadline = time.monotonic() + timeout
    while not ready.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    reached = ready.exists()
    kill(p)
    ready.unlink(missing_ok=True)
    return reached


def last_json(stdout: str) -> Optional[dict | list]:
    """The last JSON line a `--json` command printed, or None."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None
