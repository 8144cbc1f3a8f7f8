"""The MLflow tracking server: backend store on PostgreSQL, artifacts proxied to the S3 server, basic auth on.

`mlflow server --app-name basic-auth` refuses every request without the user and password (401; only
/health and static files answer anyone). Its user store (password hashes) is a SQLite file in an
owner-only folder under the root; the password reaches the server and its clients only by environment
(MLFLOW_AUTH_ADMIN_PASSWORD there, MLFLOW_TRACKING_USERNAME/PASSWORD here), never by argv or a file.
"""
from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.postgres import Postgres, create_databases
from deploy.process import Service, http_ok, launch, private_dir
from deploy.s3 import S3Server

USER = "knnclip"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


def auth_config(folder: Path) -> Path:
    """Write folder/basic_auth.ini (no secret in it: the admin password comes from the environment)."""
    ini = folder / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                   f"database_uri = sqlite:///{folder / 'users.db'}\nadmin_username = {USER}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                   # one worker: no cross-worker staleness; without the cache every request pays a PBKDF2 hash,
                   # which two replicas polling every 2 s turn into a busy server on a small machine
                   "auth_cache_ttl_seconds = 300\n")
    return ini


def start_mlflow(root: Path, pg: Postgres, s3: S3Server, port: Optional[int] = None, timeout: float = 120.0,
                 artifacts_prefix: str = "mlflow", database: str = "mlflow", name: str = "mlflow",
                 password: Optional[str] = None) -> Service:
    """Start `mlflow server` `name` on 127.0.0.1 (free port when None) with its runs and registry in `database`
    of `pg` (created when missing), artifacts under s3://<bucket>/<artifacts_prefix> and basic auth (user
    knnclip, `password`, else $MLFLOW_TRACKING_PASSWORD, else generated; a restart on the same root needs the
    first one). Returns a Service whose env holds MLFLOW_TRACKING_URI/USERNAME/PASSWORD; raises StackError
    naming the log. Credentials reach the server only by environment."""
    root = Path(root).resolve()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    password = password or os.environ.get(PASSWORD_ENV) or secrets.token_urlsafe(24)
    create_databases(pg, (database,))
    auth = private_dir(root / "auth" / name)
    env = {**s3.env, "MLFLOW_BACKEND_STORE_URI": pg.db_url(database),  # by env: no password on the command line
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_AUTH_CONFIG_PATH": str(auth_config(auth)), "MLFLOW_AUTH_ADMIN_USERNAME": USER,
           "MLFLOW_AUTH_ADMIN_PASSWORD": password, "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24)}
    cmd = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
           "--port", str(port), "--workers", "1", "--artifacts-destination", s3.uri(artifacts_prefix)]
    return launch(name, "MLflow server", cmd, root, url, lambda: http_ok(f"{url}/health"), env=env,
                  client_env={"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": USER, PASSWORD_ENV: password},
                  timeout=timeout)
