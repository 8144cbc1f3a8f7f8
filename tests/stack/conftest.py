"""Session-scoped real servers for the `stack` tests: PostgreSQL, the S3 server, MLflow (and more in
deploy/), all under one temporary root, stopped at the end. A missing PostgreSQL or moto skips the
tests, or fails them under KNNCLIP_REQUIRE_DATA=1 (.ci/run installs both)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import require_or_skip
from deploy import StackError, start_mlflow, start_postgres, start_s3
from deploy.postgres import pg_bindir
from deploy.s3 import install_hint, moto_path

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.stack)


def _start(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except StackError as exc:
        pytest.fail(f"{what} did not start: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def stack_root():
    """A fresh root folder for every server's data and logs; traversable so that `postgres` can own its part."""
    root = Path(tempfile.mkdtemp(prefix="knnclip-stack-"))
    os.chmod(root, 0o755)
    yield root
    if os.environ.get("KNNCLIP_KEEP_STACK") != "1":
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server(stack_root):
    """A running PostgreSQL with databases catalog, mlflow and prefect."""
    try:
        pg_bindir()
    except StackError as exc:
        require_or_skip(str(exc))
    pg = _start("PostgreSQL", start_postgres, stack_root, durable=False)
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def s3_server(stack_root):
    """A running S3 server (moto) with the bucket `knnclip`."""
    if not (moto_path() / "moto" / "server.py").exists():
        require_or_skip(f"moto[server] is not installed in {moto_path()} (run: {install_hint()})")
    s3 = _start("S3 server", start_s3, stack_root)
    yield s3
    s3.stop()


@pytest.fixture(scope="session")
def mlflow_server(stack_root, pg_server, s3_server):
    """A running MLflow tracking server on PostgreSQL with artifacts in the S3 server."""
    ml = _start("MLflow server", start_mlflow, stack_root, pg_server, s3_server)
    yield ml
    ml.stop()


@pytest.fixture(autouse=True)
def mlflow_credentials(request, monkeypatch):
    """A test on the session's MLflow server talks to it with its user and password (basic auth), as a machine
    with stack.env would."""
    if "mlflow_server" in request.fixturenames:
        env = request.getfixturevalue("mlflow_server").env
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.setenv(key, env[key])


@pytest.fixture
def stack_env(monkeypatch, pg_server, s3_server, mlflow_server):
    """The environment a client machine gets (tracking URI, catalog URL, S3 endpoint and keys), set for one test."""
    env = {**s3_server.env, **mlflow_server.env, "KNNCLIP_CATALOG_URL": pg_server.db_url("catalog")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture(scope="session")
def topology(stack_root, pg_server, s3_server, mlflow_server):
    """The rest of the topology on the session's stores: Prefect server + work-pool worker, Dask scheduler with
    two workers, two serve replicas following `production` (poll every 2 s). Yields deploy.stack.Stack."""
    from deploy.stack import StackOptions, up
    from knnclip_core.sample_data import write_sample_dataset

    # Promotion to production needs a gate evaluation: the flow runs of the Prefect worker get one
    # from the environment `up` starts it in (set for the start only, not for this test process).
    holdout = write_sample_dataset(stack_root / "data" / "holdout", images=4, classes=3, seed=5)
    gate_var = "KNNCLIP_PUBLISH__GATE_EVAL_PATH"
    os.environ[gate_var] = str(holdout)
    try:
        stack = _start("the topology", up, stack_root / "topology", StackOptions(poll_seconds=2.0),
                       pg=pg_server, s3=s3_server, mlflow=mlflow_server)
    finally:
        os.environ.pop(gate_var, None)
    yield stack
    for name, svc in reversed(list(stack.services.items())):
        if svc.kind not in ("postgres", "s3", "mlflow"):  # the session fixtures stop those
            svc.stop()
