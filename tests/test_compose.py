"""deploy/compose.yaml declares the topology `knnclip stack up` starts, hands every knnclip service the same
variables a local stack writes to stack.env, and takes every secret from the environment."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from deploy.postgres import Postgres
from deploy.process import Service
from deploy.s3 import S3Server
from deploy.stack import SECRET_VARS, client_env

COMPOSE = Path(__file__).resolve().parents[1] / "deploy" / "compose.yaml"
KNNCLIP_SERVICES = ("prefect-worker", "dask-worker", "serve-1", "serve-2", "mlflow")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_every_service_of_the_topology():
    services = _compose()["services"]
    assert {"postgres", "minio", "mlflow", "prefect-server", "prefect-worker", "dask-scheduler", "dask-worker",
            "serve-1", "serve-2"} <= set(services)
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    for name in ("serve-1", "serve-2"):
        assert services[name]["command"][:4] == ["knnclip", "serve", "--release", "production"]
    assert "postgresql+asyncpg://" in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]


def test_knnclip_services_get_the_variables_of_a_local_stack():
    local = client_env(Postgres(name="postgres", url="postgresql://h:5432", port=5432),
                       S3Server(name="s3", url="http://h:9000", env={"AWS_ACCESS_KEY_ID": "a",
                                                                     "AWS_SECRET_ACCESS_KEY": "b",
                                                                     "AWS_DEFAULT_REGION": "us-east-1"}),
                       Service(name="mlflow", url="http://h:5000", env={"MLFLOW_TRACKING_URI": "http://h:5000"}))
    expected = set(local) - {"PYTHONPATH"} | {"PREFECT_API_URL", "KNNCLIP_DASK_ADDRESS", "KNNCLIP_WORK_POOL",
                                              "KNNCLIP_WORKER_TOKEN"}
    services = _compose()["services"]
    for name in KNNCLIP_SERVICES:
        env = services[name]["environment"]
        assert expected <= set(env), (name, expected - set(env))


def test_secrets_come_from_the_environment_only():
    services = _compose()["services"]
    for name, svc in services.items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if key in SECRET_VARS or key.endswith(("PASSWORD", "SECRET_KEY", "_TOKEN")):
                assert str(value).startswith("${"), f"{name}: {key} is written in compose.yaml"
            if "://" in str(value) and "@" in str(value):  # user:password@host: the password is a ${VAR}
                userinfo = re.sub(r"\$\{[^}]*\}", "VAR", str(value)).split("://", 1)[1].split("@", 1)[0]
                assert userinfo.split(":", 1)[-1] == "VAR", f"{name}: {key} holds a literal password"
