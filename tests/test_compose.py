"""deploy/compose.yaml declares the topology `knnclip stack up` starts, hands every knnclip service the same
variables a local stack writes to stack.env, requires a credential on every service as the local stack does,
and takes every secret from the environment."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from deploy.dask_cluster import make_tls
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


def test_knnclip_services_get_the_variables_of_a_local_stack(tmp_path):
    local = client_env(Postgres(name="postgres", url="postgresql://h:5432", port=5432),
                       S3Server(name="s3", url="http://h:9000", env={"AWS_ACCESS_KEY_ID": "a",
                                                                     "AWS_SECRET_ACCESS_KEY": "b",
                                                                     "AWS_DEFAULT_REGION": "us-east-1"}),
                       Service(name="mlflow", url="http://h:5000", env={"MLFLOW_TRACKING_URI": "http://h:5000",
                                                                        "MLFLOW_TRACKING_USERNAME": "knnclip",
                                                                        "MLFLOW_TRACKING_PASSWORD": "p"}))
    expected = set(local) - {"PYTHONPATH"} | {"PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "KNNCLIP_DASK_ADDRESS",
                                              "KNNCLIP_WORK_POOL", "KNNCLIP_WORKER_TOKEN"} | set(make_tls(tmp_path))
    services = _compose()["services"]
    for name in KNNCLIP_SERVICES:
        env = services[name]["environment"]
        assert expected <= set(env), (name, expected - set(env))


def test_secrets_come_from_the_environment_only():
    services = _compose()["services"]
    for name, svc in services.items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if key in SECRET_VARS or key.endswith(("PASSWORD", "SECRET_KEY", "_TOKEN", "AUTH_STRING")):
                assert str(value).startswith("${"), f"{name}: {key} is written in compose.yaml"
            if "://" in str(value) and "@" in str(value):  # user:password@host: the password is a ${VAR}
                userinfo = re.sub(r"\$\{[^}]*\}", "VAR", str(value)).split("://", 1)[1].split("@", 1)[0]
                assert userinfo.split(":", 1)[-1] == "VAR", f"{name}: {key} holds a literal password"


def test_every_service_requires_a_credential():
    services = _compose()["services"]
    assert ": trust" not in COMPOSE.read_text() and "=trust" not in COMPOSE.read_text()
    pg = services["postgres"]["environment"]
    assert pg["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256" and "--auth-local=scram-sha-256" in pg["POSTGRES_INITDB_ARGS"]
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"].startswith("${")
    ml = services["mlflow"]
    assert ml["command"][:4] == ["mlflow", "server", "--app-name", "basic-auth"]
    assert ml["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_TRACKING_PASSWORD")
    auth_ini = _compose()["configs"]["mlflow-auth"]["content"]
    assert "admin_password" not in auth_ini and "database_uri = sqlite:////data/" in auth_ini
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"].startswith(
        "${PREFECT_API_AUTH_STRING")
    for name in KNNCLIP_SERVICES:
        env = services[name]["environment"]
        assert env["KNNCLIP_DASK_ADDRESS"].startswith("tls://") and env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
        assert env["MLFLOW_TRACKING_PASSWORD"].startswith("${") and env["PREFECT_API_AUTH_STRING"].startswith("${")
    for name in ("dask-scheduler", "dask-worker"):
        cmd = services[name]["command"]
        assert cmd[cmd.index("--protocol") + 1] == "tls" and "--tls-key" in cmd and "--tls-cert" in cmd
        assert set(services[name].get("secrets", []) or _compose()["x-knnclip"]["secrets"]) == {"dask-cert", "dask-key"}
    assert services["dask-worker"]["command"][2].startswith("tls://")
