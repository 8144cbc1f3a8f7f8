"""Local stand-ins for the multi-machine topology: PostgreSQL, an S3 server, MLflow, Prefect, Dask.

Each `start_*` function takes a root folder (all data under it, logs under root/logs),
picks free loopback ports, waits for readiness and returns a `Service` with its URL,
the environment a client needs, and `stop()`. Used by tests/stack and `knnclip stack`.
"""
from deploy.process import Service, StackError
from deploy.postgres import Postgres, start_postgres
from deploy.s3 import S3Server, start_s3
from deploy.mlflow_server import start_mlflow

__all__ = ["Service", "StackError", "Postgres", "start_postgres", "S3Server", "start_s3", "start_mlflow"]
