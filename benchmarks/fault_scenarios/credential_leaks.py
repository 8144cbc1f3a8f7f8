"""Fault scenario: a sentinel password in every URL setting, then every output scanned for it.

The URL settings (MLFLOW_TRACKING_URI, KNNCLIP_CATALOG_URL, KNNCLIP_LOCK_URL,
KNNCLIP_S3_ENDPOINT with an s3:// memory, AWS_ENDPOINT_URL, PREFECT_API_URL) each carry
`user:<sentinel>@` and point at a closed loopback port, so every command that uses one fails,
which is where messages quote URLs. Scanned for the sentinel (and its percent-encoded form):

- the real CLI (child processes, -v so that logs are on): stdout and stderr of each command
  that touches each setting;
- the dashboard (in process, real HTTP through TestClient): every page and JSON answer, and
  every log record it wrote;
- the worker (in process): /healthz, /readyz, /release, /metrics, POST /segment, and its log;
- a workspace taken through the whole pipeline (ingest -> embed -> curate -> publish) with the
  sentinel in the URL settings it does not need: every file it wrote (catalog, memory,
  MLflow database with its tags and params, artifacts, reports).

    run(workdir, cases=0 (all), seed=0) -> {"cases", "lost_or_corrupted", "tracebacks", "leaks",
                                            "failures": [first few]}
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHILD_TIMEOUT_S = 180


def sentinel(seed: int) -> str:
    """A password no code would print by chance (with characters URLs must encode)."""
    return f"Sntl{random.Random(seed).randrange(10 ** 8):08d}pw"


def url_settings(secret: str, port: int) -> dict[str, dict[str, str]]:
    """name -> the environment that puts `secret` into that URL setting (closed `port`)."""
    host = f"127.0.0.1:{port}"
    return {
        "mlflow": {"MLFLOW_TRACKING_URI": f"http://knn:{secret}@{host}", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                   "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"},
        "catalog": {"KNNCLIP_CATALOG_URL": f"postgresql+psycopg://knn:{secret}@{host}/knnclip"},
        "lock": {"KNNCLIP_LOCK_URL": f"postgresql+psycopg://knn:{secret}@{host}/locks"},
        "s3": {"KNNCLIP_MEMORY_URI": "s3://knnclip-bucket/memory", "KNNCLIP_S3_ENDPOINT": f"http://key:{secret}@{host}",
               "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": f"aws-{secret}", "AWS_DEFAULT_REGION": "us-east-1"},
        "aws_endpoint": {"KNNCLIP_MEMORY_URI": "s3://knnclip-bucket/memory", "AWS_ENDPOINT_URL": f"http://key:{secret}@{host}",
                         "AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "x" * 8, "AWS_DEFAULT_REGION": "us-east-1"},
        "prefect": {"PREFECT_API_URL": f"http://u:{secret}@{host}/api", "PREFECT_CLIENT_MAX_RETRIES": "0"},
    }


COMMANDS = {  # setting -> commands that use it
    "mlflow": [["releases", "list"], ["releases", "show", "1"], ["releases", "diff", "1", "2"],
               ["releases", "promote", "1", "--alias", "production"], ["releases", "rollback"],
               ["releases", "list", "--json"], ["worker", "segment", "{image}"], ["publish"],
               ["run", "{data}"]],  # a temporary Prefect server: its database and logs are scanned too
    "catalog": [["info"], ["info", "--json"], ["ingest", "{data}"], ["memory", "stats"], ["quarantine", "list"],
                ["embed"], ["curate"], ["forget", "--dataset", "d", "--allow-unknown"]],
    "lock": [["curate"], ["forget", "--dataset", "d", "--allow-unknown"], ["unforget", "--dataset", "d"],
             ["info"]],
    "s3": [["memory", "stats"], ["embed"], ["curate"], ["info"], ["publish"]],
    "aws_endpoint": [["memory", "stats"], ["curate"]],
    "prefect": [["run", "{data}"]],
}


def leaked(text: str, secret: str) -> bool:
    """True when `text` holds the sentinel, plainly or percent-encoded."""
    return secret in text or quote(secret) in text


@contextlib.contextmanager
def environment(env: dict) -> Iterator[None]:
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith(("KNNCLIP_", "MLFLOW_TRACKING", "PREFECT_API", "AWS_"))]:
        del os.environ[k]
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Every log record (any logger, DEBUG and up), formatted with its traceback."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


class Tally:
    def __init__(self, secret: str):
        self.secret, self.cases, self.leaks, self.tracebacks, self.failures = secret, 0, 0, 0, []

    def check(self, label: str, text: str, traceback_ok: bool = False) -> None:
        self.cases += 1
        leak = leaked(text, self.secret)
        tb = "Traceback (most recent call last)" in text and not traceback_ok
        self.leaks += leak
        self.tracebacks += tb
        if (leak or tb) and len(self.failures) < 12:
            at = text.find(self.secret) if leak else text.find("Traceback")
            self.failures.append({"case": label, "leak": leak, "traceback": tb,
                                  "excerpt": text[max(0, at - 200): at + 100]})


def cli_cases(t: Tally, workdir: Path, port: int, data: Path, image: Path) -> None:
    import subprocess

    from benchmarks.fault_scenarios import common

    for name, env in url_settings(t.secret, port).items():
        for argv in COMMANDS[name]:
            argv = [a.format(data=data, image=image) for a in argv]
            home = workdir / f"cli-{name}"
            e = common.child_env(home, **env)
            cmd = [sys.executable, "-c", "import sys\n" + common.MAIN, "-v", *argv]
            try:
                res = subprocess.run(cmd, cwd=str(ROOT), env=e, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
                out = res.stdout + res.stderr
            except subprocess.TimeoutExpired as exc:
                out = f"{exc.stdout or ''}{exc.stderr or ''} (timed out)"
            t.check(f"cli {name}: knnclip {' '.join(argv)}", out if isinstance(out, str) else out.decode(errors="replace"))
        scan_files(t, f"cli {name} files", workdir / f"cli-{name}")


def dashboard_cases(t: Tally, workdir: Path, port: int, png: bytes) -> None:
    from fastapi.testclient import TestClient

    env = {"KNNCLIP_HOME": str(workdir / "dash"), **url_settings(t.secret, port)["mlflow"],
           **url_settings(t.secret, port)["lock"], "KNNCLIP_WORKER_TOKEN": "dash-token-1"}
    routes = ["/", "/api/memory", "/quarantine", "/api/quarantine", "/api/quarantine/1", "/releases", "/api/releases",
              "/releases/diff", "/releases/diff?a=1&b=2", "/api/releases/diff?a=1&b=2", "/try", "/healthz"]
    with environment(env), captured_logs() as logs:
        from dashboards.app import create_app
        from knnclip_core.config import load_settings

        with TestClient(create_app(load_settings()), raise_server_exceptions=False) as client:
            for route in routes:
                r = client.get(route)
                t.check(f"dashboard GET {route}", f"{r.status_code} {r.headers} {r.text}")
            auth = {"Authorization": "Bearer dash-token-1"}
            for route, form in (("/releases/promote", {"version": "1", "alias": "production"}),
                                ("/api/releases/promote", {"version": "1", "alias": "production"}),
                                ("/releases/rollback", {"alias": "production"}),
                                ("/api/releases/rollback", {"alias": "production"})):
                r = client.post(route, data=form, headers=auth)
                t.check(f"dashboard POST {route}", f"{r.status_code} {r.text}")
            for route in ("/try", "/api/try"):
                r = client.post(route, files={"image": ("a.png", png, "image/png")}, data={"alias": "production"})
                t.check(f"dashboard POST {route}", f"{r.status_code} {r.text}")
    t.check("dashboard log", logs.getvalue(), traceback_ok=True)


def worker_cases(t: Tally, workdir: Path, port: int, png: bytes) -> None:
    from fastapi.testclient import TestClient

    env = {"KNNCLIP_HOME": str(workdir / "worker"), **url_settings(t.secret, port)["mlflow"],
           "KNNCLIP_WORKER_TOKEN": "worker-token-1"}
    auth = {"Authorization": "Bearer worker-token-1"}
    with environment(env), captured_logs() as logs:
        from knnclip_core.config import load_settings
        from knnclip_core.serving.service import create_app
        from serving.worker_source import RegistryReleaseSource

        settings = load_settings()
        source = RegistryReleaseSource("models:/knnclip-memory@production", settings)
        app = create_app(source, settings, poll_seconds=60, start_watcher=False)
        app.state.watcher.poll_once()  # the failing load, as the watcher thread would do it
        with TestClient(app, raise_server_exceptions=False) as client:
            for route in ("/healthz", "/readyz", "/release", "/metrics"):
                r = client.get(route, headers=auth)
                t.check(f"worker GET {route}", f"{r.status_code} {r.text}")
            r = client.post("/segment", files={"image": ("a.png", png, "image/png")}, headers=auth)
            t.check("worker POST /segment", f"{r.status_code} {r.text}")
    t.check("worker log", logs.getvalue(), traceback_ok=True)


def stored_cases(t: Tally, workdir: Path, port: int) -> None:
    """The whole pipeline with the sentinel in the URL settings it does not use; every file scanned."""
    from benchmarks.fault_scenarios import common
    from knnclip_core.sample_data import write_sample_dataset

    settings = url_settings(t.secret, port)
    env = {**settings["prefect"], "KNNCLIP_S3_ENDPOINT": settings["s3"]["KNNCLIP_S3_ENDPOINT"],
           "AWS_ENDPOINT_URL": settings["aws_endpoint"]["AWS_ENDPOINT_URL"]}
    data = write_sample_dataset(workdir / "stored-data", images=6, classes=3, seed=1)
    home = workdir / "stored"
    res = common.run(home, [str(home), str(data)], code=common.PIPELINE, timeout=600, **env)
    t.check("pipeline output", res.stdout + res.stderr)
    if res.returncode != 0:
        t.failures.append({"case": "pipeline", "excerpt": res.stderr[-600:]})
    scan_files(t, "stored", home)


def scan_files(t: Tally, label: str, home: Path) -> None:
    """One case per file under `home` (catalog, memory, MLflow store and artifacts, Prefect's
    database and logs, reports): its bytes must not hold the sentinel."""
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        t.check(f"{label} {path.relative_to(home)}", path.read_bytes().decode("latin-1"), traceback_ok=True)


def run(workdir: Path, cases: int = 0, seed: int = 0) -> dict:
    """Run every leak check (see module docstring); `cases` > 0 keeps only the in-process parts
    when it is below the CLI's share (a quick look). Returns the report."""
    from benchmarks.fault_scenarios.common import bomb_png  # noqa: F401 - the helpers import cleanly
    from knnclip_core.net import free_port
    from knnclip_core.sample_data import write_sample_dataset

    workdir = Path(workdir)
    t = Tally(sentinel(seed))
    port = free_port()  # nothing listens there
    data = write_sample_dataset(workdir / "data", images=4, classes=2, seed=seed)
    image = sorted((data / "images").iterdir())[0]
    png = image.read_bytes()
    dashboard_cases(t, workdir, port, png)
    worker_cases(t, workdir, port, png)
    if not cases or cases > t.cases:
        cli_cases(t, workdir, port, data, image)
        stored_cases(t, workdir, port)
    return {"cases": t.cases, "lost_or_corrupted": 0, "tracebacks": t.tracebacks, "leaks": t.leaks,
            "failures": t.failures}


if __name__ == "__main__":
    from benchmarks.fault_scenarios.common import run_standalone

    run_standalone(run, __doc__, default_cases=0)
