"""Helpers the fault scenarios and the reliability tests share: run `knnclip` in a child
process (optionally paused inside MLflow's schema creation), kill it with SIGKILL, and
read what the workspace holds afterwards. Only loopback addresses are ever used."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

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


# --- the worker on loopback, and hostile clients -------------------------------------------

@contextlib.contextmanager
def serving(app, timeout: float = 60.0, ready: bool = False) -> Iterator[str]:
    """Run the ASGI `app` with uvicorn on 127.0.0.1 in a thread; yields its base URL once it
    answers (with `ready`: once /readyz says 200, i.e. a release is loaded)."""
    import threading
    import urllib.error
    import urllib.request

    import uvicorn

    from knnclip_core.net import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2):
                break
        except urllib.error.HTTPError:
            if not ready:
                break  # answering (503 before a release loads)
            time.sleep(0.05)
        except OSError:
            time.sleep(0.05)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(15)


BOUNDARY = "knnclipfaultboundary"
MULTIPART_HEAD = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\n"
                  "Content-Type: image/png\r\n\r\n").encode()


def raw_post(base: str, path: str, body_bytes: int, headers: dict, chunk: int = 65536, rate_bps: float = 0.0,
             declare: Optional[int] = -1, timeout: float = 30.0) -> dict:
    """POST a multipart image upload with a raw socket: the part's head, then zero bytes up
    to `body_bytes` (at `rate_bps` bytes/s when > 0), watching for an early answer.
    `declare`: Content-Length to send (-1: the real size, None: chunked). Returns
    {'status', 'sent', 'seconds'}: body bytes that went out before the server answered."""
    import select
    import socket
    from urllib.parse import urlparse

    u = urlparse(base)
    t0 = time.monotonic()
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    lines = [f"POST {path} HTTP/1.1", f"Host: {u.hostname}:{u.port}",
             f"Content-Type: multipart/form-data; boundary={BOUNDARY}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append("Transfer-Encoding: chunked" if declare is None else f"Content-Length: {body_bytes if declare == -1 else declare}")
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sent, answer = 0, b""
    block = b"\0" * chunk
    first = MULTIPART_HEAD
    try:
        while time.monotonic() - t0 < timeout:
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                break
            if sent >= body_bytes:
                select.select([s], [], [], max(0.0, timeout - (time.monotonic() - t0)))
                break
            n = min(chunk, body_bytes - sent)
            piece = (first + block)[:n]
            first = first[n:]
            data = piece if declare is not None else f"{n:x}\r\n".encode() + piece + b"\r\n"
            try:
                s.sendall(data)
            except OSError:
                break
            sent += n
            if rate_bps:
                time.sleep(n / rate_bps)
        s.settimeout(max(1.0, timeout - (time.monotonic() - t0)))
        try:
            answer = s.recv(4096)
        except OSError:
            pass
    finally:
        s.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    return {"status": status, "sent": sent, "seconds": time.monotonic() - t0}


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring width x height pixels, with one tiny compressed row: a
    decompression bomb by its declared size."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --- a small pipeline in one child process, and what a workspace holds ---------------------

PIPELINE = """
from knnclip_core.cli.main import main
home = sys.argv[1]
for data in sys.argv[2:]:
    if main(["--home", home, "ingest", data]) != 0:
        sys.exit(3)
for argv in (["embed"], ["curate"], ["publish"]):
    if main(["--home", home, *argv]) != 0:
        sys.exit(3)
"""


def pipeline(home: Path, data: Sequence[Path], **kw) -> subprocess.Popen:
    """Start ingest (each of `data`) -> embed -> curate -> publish in one child process."""
    return start(home, [str(home), *map(str, data)], code=PIPELINE, **kw)


def published_workspace(workdir: Path, seed: int) -> tuple[Path, Path]:
    """(workspace home, data folder): a small sample dataset taken through the whole pipeline
    (one release published). Raises RuntimeError with the child's stderr when it fails."""
    from knnclip_core.sample_data import write_sample_dataset

    data = write_sample_dataset(workdir / "data", images=8, classes=3, seed=seed)
    home = workdir / "ws"
    res = run(home, [str(home), str(data)], code=PIPELINE, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(f"the pipeline failed: {res.stderr[-1500:]}")
    return home, data


def _sqlite_rows(db: Path, sql: str) -> list:
    import sqlite3

    if not db.exists():
        return []
    con = sqlite3.connect(str(db), timeout=60)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:  # table not there (yet)
        return []
    finally:
        con.close()


def workspace_state(home: Path) -> dict:
    """What a workspace holds: memory rows {id: [state, sha256 of the vector]}, release
    versions with their content fingerprints, aliases, and runs left running."""
    import hashlib

    from knnclip_core.memory.table import connect, list_table_names

    memory: dict = {}
    rows = 0
    if (home / "memory").is_dir():
        db = connect(home / "memory")
        for name in list_table_names(db):
            t = db.open_table(name).to_arrow()
            vec = t.column("vector")
            rows += t.num_rows
            for i, s, v in zip(t.column("id").to_pylist(), t.column("state").to_pylist(), vec):
                memory[f"{name}/{i}"] = [s, hashlib.sha256(v.values.to_numpy(zero_copy_only=False).tobytes()).hexdigest()]
    mdb, cdb = home / "mlflow" / "mlflow.db", home / "catalog.db"
    fps = dict(_sqlite_rows(mdb, "SELECT version, value FROM model_version_tags WHERE key='knnclip.content_fingerprint'"))
    versions = sorted(int(v) for (v,) in _sqlite_rows(mdb, "SELECT version FROM model_versions"))
    return {"memory": memory, "memory_rows": rows, "versions": versions, "fingerprints": [fps.get(v) for v in versions],
            "aliases": dict(_sqlite_rows(mdb, "SELECT alias, version FROM registered_model_aliases")),
            "mlflow_running": len(_sqlite_rows(mdb, "SELECT run_uuid FROM runs WHERE status='RUNNING'")),
            "catalog_running": len(_sqlite_rows(cdb, "SELECT id FROM ingestbatch WHERE status='running'"))
            + len(_sqlite_rows(cdb, "SELECT id FROM curationrun WHERE status='running'"))}


def clean_exit(res: subprocess.CompletedProcess) -> bool:
    """Exit 0, or exit 2 with a one-sentence message (e.g. busy), and no traceback."""
    return res.returncode == 0 or (res.returncode == 2 and "Traceback" not in res.stderr)


def run_standalone(run, doc: str, default_cases: int) -> None:
    """A scenario module run as a script: `--cases N --seed S [--json]`, in a temporary folder."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--cases", type=int, default=default_cases)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(Path(tmp), a.cases, a.seed)
    print(json.dumps(report) if a.json else report)
