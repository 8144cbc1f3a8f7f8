"""Prefect on PostgreSQL: the server, a process work pool with its worker, and the pipeline's deployment.

The server refuses every API request without its auth string (PREFECT_SERVER_API_AUTH_STRING, basic auth;
only GET /api/health and /api/ready answer anyone); clients send it from PREFECT_API_AUTH_STRING."""
from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time
import urllib.request
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.postgres import Postgres
from deploy.process import Service, StackError, http_ok, launch

REPO = Path(__file__).resolve().parents[1]
POOL = "knnclip-pool"
DEPLOYMENT = "knnclip-curation"
AUTH_ENV = "PREFECT_API_AUTH_STRING"
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true", "PREFECT_LOGGING_LEVEL": "INFO"}


def api(url: str, path: str, body: Optional[dict] = None, timeout: float = 10.0, auth: Optional[str] = None):
    """POST `body` (GET when None) to the Prefect API at url+path with the auth string `auth` (default
    $PREFECT_API_AUTH_STRING); returns the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    auth = auth or os.environ.get(AUTH_ENV)
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    req = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def start_prefect_server(root: Path, pg: Postgres, port: Optional[int] = None, timeout: float = 180.0,
                         auth: Optional[str] = None) -> Service:
    """Start `prefect server start` on 127.0.0.1 with its database `prefect` on `pg` (asyncpg), refusing requests
    without the auth string `auth` (default $PREFECT_API_AUTH_STRING, else a generated "knnclip:<random>");
    returns a Service whose env holds PREFECT_API_URL and PREFECT_API_AUTH_STRING; raises StackError naming the log."""
    root = Path(root).resolve()
    port = port or free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    auth = auth or os.environ.get(AUTH_ENV) or f"knnclip:{secrets.token_urlsafe(24)}"
    env = {**QUIET, "PREFECT_HOME": str(root / "prefect" / "server"), "PREFECT_SERVER_API_AUTH_STRING": auth, AUTH_ENV: auth,
           "PREFECT_API_DATABASE_CONNECTION_URL": pg.db_url("prefect", driver="asyncpg"),
           "PREFECT_SERVER_API_HOST": "127.0.0.1", "PREFECT_UI_API_URL": api_url}
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return launch("prefect-server", "Prefect server", cmd, root, api_url, lambda: http_ok(f"{api_url}/health"),
                  env=env, client_env={"PREFECT_API_URL": api_url, AUTH_ENV: auth}, timeout=timeout)


def start_prefect_worker(root: Path, server: Service, env: dict, pool: str = POOL, name: str = "knnclip-worker",
                         timeout: float = 120.0) -> Service:
    """Start `prefect worker start --type process` on `pool` (created when missing) in the project folder, with
    `env` (the machine's variables and secrets: flow runs inherit them, nothing goes into parameters);
    waits until the worker has registered with the server; raises StackError naming the log."""
    root = Path(root).resolve()
    wenv = {**QUIET, **env, **server.env, "PREFECT_API_URL": server.url, "PREFECT_HOME": str(root / "prefect" / name),
            "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--name", name,
           "--install-policy", "never"]

    def ready() -> bool:
        workers = api(server.url, f"/work_pools/{pool}/workers/filter", {}, auth=server.env.get(AUTH_ENV))
        return any(w.get("name") == name for w in workers)

    return launch(name, "Prefect worker", cmd, root, f"{server.url}/work_pools/{pool}", ready, env=wenv,
                  client_env={"KNNCLIP_WORK_POOL": pool}, cwd=REPO, timeout=timeout)


def deploy_pipeline(api_url: str, parameters: dict, pool: str = POOL, name: str = DEPLOYMENT,
                    cron: Optional[str] = None, paused: bool = False) -> str:
    """Register the curation pipeline (flows/pipeline.py:curation_pipeline, from the project folder) as a
    deployment on `pool` with `parameters` and an optional `cron` schedule; returns its id. Parameters must
    not hold secrets (the flow refuses them); the worker's environment supplies them."""
    os.environ["PREFECT_API_URL"] = api_url  # the auth string comes from PREFECT_API_AUTH_STRING
    from prefect.deployments.runner import EntrypointType

    from flows.pipeline import curation_pipeline

    # By module path (flows.pipeline), not file path: Dask workers must unpickle the tasks by that name.
    return str(curation_pipeline.deploy(name=name, work_pool_name=pool, parameters=parameters, cron=cron,
                                        paused=paused, build=False, push=False, print_next_steps=False,
                                        ignore_warnings=True, entrypoint_type=EntrypointType.MODULE_PATH))


def start_run(api_url: str, deployment_id: str, parameters: Optional[dict] = None) -> str:
    """Create a flow run of the deployment now (what its schedule would do), for the work pool's worker to pick
    up; `parameters` override the deployment's. Returns the flow run id."""
    body = {"parameters": parameters} if parameters else {}
    return api(api_url, f"/deployments/{deployment_id}/create_flow_run", body)["id"]


def wait_flow_run(api_url: str, flow_run_id: str, timeout: float = 600.0) -> dict:
    """Poll a flow run until it reaches a final state; returns the run (JSON); raises StackError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api(api_url, f"/flow_runs/{flow_run_id}")
        if (run.get("state") or {}).get("type") in {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}:
            return run
        time.sleep(1.0)
    raise StackError(f"flow run {flow_run_id} did not finish within {timeout:.0f} s")
