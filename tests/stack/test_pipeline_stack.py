"""The full pipeline on the real topology: a scheduled Prefect deployment on the work pool, a flow run of it
picked up by the pool's worker, embedding on the Dask cluster, the memory in the object store, the release in
the MLflow server promoted to production; both serve replicas serve it, and a rollback moves both."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from knnclip_core.sample_data import write_sample_dataset

from deploy.dask_cluster import security
from deploy.prefect_stack import api, start_run, wait_flow_run
from deploy.stack import SECRET_VARS
from deploy.serve import release_of

pytestmark = pytest.mark.slow
LOAD_ALLOWANCE_S = 30.0  # a replica notices within one poll; loading a new release on 2 busy cores takes the rest
CACHED_ALLOWANCE_S = 8.0  # going back to a release both replicas already hold (cached, embedder warm)


def _bucket_keys(s3, prefix: str) -> list[str]:
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _replicas(stack) -> list:
    return [s for s in stack.services.values() if s.kind == "serve"]


def _wait_replicas(stack, version: str, since: float, poll: float,
                   allowance: float = LOAD_ALLOWANCE_S) -> list[float]:
    """Seconds after `since` at which each replica reported `version` on /release; fails past poll + allowance."""
    token = stack.env["KNNCLIP_WORKER_TOKEN"]
    seen: dict[str, float] = {}
    deadline = since + poll + allowance
    while len(seen) < len(_replicas(stack)) and time.time() < deadline:
        for r in _replicas(stack):
            if r.name not in seen and release_of(r.url, token).get("version") == version:
                seen[r.name] = time.time() - since
        time.sleep(0.2)
    states = {r.name: release_of(r.url, token) for r in _replicas(stack)}
    assert len(seen) == 2, f"replicas not on version {version} within {poll + allowance:.0f} s: {states}"
    assert all(s["alias"] == "production" and s["ready"] for s in states.values()), states
    return list(seen.values())


def _dask_prefixes(address: str, env: dict) -> set[str]:
    from distributed import Client

    with Client(address, timeout=10, security=security(env)) as c:
        return set(c.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes)))


def test_scheduled_deployment_on_the_topology(topology, s3_server, mlflow_server, stack_root, monkeypatch):
    from mlflow import MlflowClient

    env = topology.env
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", env["PREFECT_API_AUTH_STRING"])  # this test is a client too
    api_url = env["PREFECT_API_URL"]
    data1 = write_sample_dataset(stack_root / "data" / "day1", images=6, classes=3, seed=1)
    data2 = write_sample_dataset(stack_root / "data" / "day2", images=6, classes=4, seed=2)
    out = subprocess.run([sys.executable, "-m", "deploy", "deploy", str(data1), "--cron", "0 3 * * *", "--promote",
                          "production", "--backbone", "classic-v2", "--json"], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    registered = json.loads(out.stdout.splitlines()[-1])
    dep_id, params = registered["deployment_id"], registered["parameters"]
    assert params["dask_address"] == env["KNNCLIP_DASK_ADDRESS"] and params["embed_shards"] == 2
    dep = api(api_url, f"/deployments/{dep_id}")
    assert dep["work_pool_name"] == env["KNNCLIP_WORK_POOL"]
    assert [s["schedule"]["cron"] for s in dep["schedules"]] == ["0 3 * * *"]
    secrets = [env[k] for k in SECRET_VARS]
    assert not any(s in json.dumps(dep) for s in secrets), "a secret is stored in the deployment"

    # The schedule's run, now: the pool's worker picks it up; embedding runs on the Dask cluster.
    run_id = start_run(api_url, dep_id)
    run = wait_flow_run(api_url, run_id, timeout=400)
    done = time.time()
    worker_log = topology.services["knnclip-worker"].log.read_text()
    assert run["state"]["type"] == "COMPLETED", (run["state"], worker_log[-3000:])
    assert run["work_pool_name"] == env["KNNCLIP_WORK_POOL"] and run_id in worker_log
    assert not any(s in json.dumps(run) or s in worker_log for s in secrets), "a secret in the run or the worker log"
    assert any(p.startswith("embed") for p in _dask_prefixes(env["KNNCLIP_DASK_ADDRESS"], env))

    # The memory lives in the object store, the release in the MLflow server (artifacts in the bucket).
    assert any(k.endswith(".lance") or "/data/" in k for k in _bucket_keys(s3_server, "memory/")), \
        "no LanceDB data under s3://knnclip/memory"
    client = MlflowClient(tracking_uri=mlflow_server.url)
    v1 = client.get_model_version_by_alias("knnclip-memory", "production")
    assert any(k.startswith("mlflow/") for k in _bucket_keys(s3_server, "mlflow/"))
    delays = _wait_replicas(topology, v1.version, done, 2.0)

    # A second batch through the same deployment: version 2 in production on both replicas.
    run = wait_flow_run(api_url, start_run(api_url, dep_id, {**params, "path": str(data2)}), timeout=400)
    done = time.time()
    assert run["state"]["type"] == "COMPLETED", run["state"]
    v2 = client.get_model_version_by_alias("knnclip-memory", "production")
    assert int(v2.version) == int(v1.version) + 1
    delays += _wait_replicas(topology, v2.version, done, 2.0)

    # Rollback from a third machine (its own folder, the shared servers only): both replicas go back.
    home = stack_root / "machines" / "operator"
    out = subprocess.run([sys.executable, "-m", "knnclip_core.cli.main", "--home", str(home), "releases", "rollback",
                          "--alias", "production", "--json"], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    moved = time.time()
    assert client.get_model_version_by_alias("knnclip-memory", "production").version == v1.version
    delays += _wait_replicas(topology, v1.version, moved, 2.0, CACHED_ALLOWANCE_S)
    print(f"replicas on the new release after {', '.join(f'{d:.1f}' for d in delays)} s")
