"""The MLflow tracking server: backend store on PostgreSQL, artifacts proxied to the S3 server."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.postgres import Postgres, create_databases
from deploy.process import Service, http_ok, launch
from deploy.s3 import S3Server


def start_mlflow(root: Path, pg: Postgres, s3: S3Server, port: Optional[int] = None, timeout: float = 120.0,
                 artifacts_prefix: str = "mlflow", database: str = "mlflow", name: str = "mlflow") -> Service:
    """Start `mlflow server` `name` on 127.0.0.1 (free port when None) with its runs and registry in `database`
    of `pg` (created when missing) and artifacts under s3://<bucket>/<artifacts_prefix>; returns a Service whose env holds
    MLFLOW_TRACKING_URI; raises StackError naming the log. Credentials reach the server only by environment."""
    root = Path(root).resolve()
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    create_databases(pg, (database,))
    env = {**s3.env, "MLFLOW_BACKEND_STORE_URI": pg.db_url(database),  # by env: no password on the command line
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--artifacts-destination", s3.uri(artifacts_prefix)]
    return launch(name, "MLflow server", cmd, root, url, lambda: http_ok(f"{url}/health"), env=env,
                  client_env={"MLFLOW_TRACKING_URI": url}, timeout=timeout)
