"""`python -m deploy` (= `knnclip stack`) up | status | down: state and env files, a dead service reported,
everything stopped by down with the data kept for the next up, and --purge deleting it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from deploy.process import pid_alive
from deploy.s3 import client


def _stack(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _s3(env: dict):
    return client(env["KNNCLIP_S3_ENDPOINT"], env)


def _env_file(root) -> dict:
    lines = (root / "stack.env").read_text().splitlines()
    return {k.removeprefix("export "): v.strip("'") for k, v in (ln.split("=", 1) for ln in lines)}


def test_up_status_down_keeps_data_and_purge_removes_it(pg_server, s3_server, stack_root, monkeypatch):
    # (the session fixtures only make sure PostgreSQL and moto are installed; this stack is its own)
    root = stack_root / "cli"
    small = ("--root", str(root), "--replicas", "1", "--dask-workers", "0", "--no-prefect", "--json")
    up = _stack("up", *small, env={"AWS_SECRET_ACCESS_KEY": "from-the-env"})
    assert up.returncode == 0, up.stderr[-2000:]
    services = json.loads(up.stdout.splitlines()[-1])["services"]
    assert set(services) == {"postgres", "s3", "mlflow", "serve-1"}
    env = _env_file(root)
    assert (root / "stack.env").stat().st_mode & 0o077 == 0, "stack.env holds secrets: owner only"
    assert env["AWS_SECRET_ACCESS_KEY"] == "from-the-env" and env["KNNCLIP_WORKER_TOKEN"]
    assert "from-the-env" not in (root / "stack.json").read_text() and env["KNNCLIP_WORKER_TOKEN"] not in \
        (root / "stack.json").read_text()
    assert {"MLFLOW_TRACKING_URI", "KNNCLIP_CATALOG_URL", "KNNCLIP_MEMORY_URI"} <= set(env)
    assert _stack("up", *small).returncode == 2  # refuses a second stack on the same root

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", env["MLFLOW_TRACKING_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", env["MLFLOW_TRACKING_PASSWORD"])
    mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"]).create_experiment("kept")
    _s3(env).put_object(Bucket="knnclip", Key="kept.txt", Body=b"kept")
    os.kill(services["serve-1"]["pid"], signal.SIGKILL)
    status = _stack("status", "--root", str(root), "--json")
    rows = json.loads(status.stdout.splitlines()[-1])
    assert status.returncode == 1 and not rows["serve-1"]["answering"] and rows["mlflow"]["answering"]

    assert _stack("down", "--root", str(root)).returncode == 0
    assert not any(pid_alive(s["pid"]) for s in services.values())
    assert (root / "postgres" / "data" / "PG_VERSION").exists() and not (root / "stack.json").exists()

    again = _stack("up", *small)
    assert again.returncode == 0, again.stderr[-2000:]
    env = _env_file(root)
    assert mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"]).get_experiment_by_name("kept") is not None
    assert [o["Key"] for o in _s3(env).list_objects_v2(Bucket="knnclip")["Contents"]] == ["kept.txt"]
    assert _stack("down", "--root", str(root), "--purge").returncode == 0
    assert not root.exists()
