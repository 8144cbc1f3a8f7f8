"""Helpers of the stack tests that share stores between "machines": a fresh database on the
PostgreSQL server, and the environment a machine gets (its own home, the shared servers)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fresh_database(pg, prefix: str) -> str:
    """Create an empty database named `prefix`_<random> on `pg`; returns its psycopg SQLAlchemy URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg.db_url("postgres", driver=""), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return pg.db_url(name)


def machine_env(home: Path, shared: dict) -> dict:
    """The environment of one machine: this process's, without any KNNCLIP_/MLFLOW_ setting
    of the caller, plus its own KNNCLIP_HOME and the `shared` servers' variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNNCLIP_", "MLFLOW_TRACKING"))}
    env.update(shared)
    env.update({"KNNCLIP_HOME": str(home), "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])})
    return env
