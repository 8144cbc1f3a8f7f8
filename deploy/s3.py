"""An S3-compatible server for the object store: moto's standalone server, kept outside the project's venv.

moto[server] pulls graphql-core 3.3, which breaks MLflow's graphene, so it lives in its own
`pip install --target` folder (KNNCLIP_MOTO_PATH, default ~/.cache/knnclip/moto-5.2.5) that is
put on PYTHONPATH for the server process only. moto keeps objects in memory; with `persist`
every write is recorded under root/s3 and replayed at the next start, so data survives a restart.
"""
from __future__ import annotations

import os
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.process import Service, StackError, http_ok, spawn, wait_until

MOTO_VERSION = "5.2.5"
MOTO_PATH_ENV = "KNNCLIP_MOTO_PATH"
DEFAULT_BUCKET = "knnclip"
REGION = "us-east-1"


def moto_path() -> Path:
    """The --target folder holding moto[server] (KNNCLIP_MOTO_PATH or ~/.cache/knnclip/moto-<version>)."""
    return Path(os.environ.get(MOTO_PATH_ENV) or Path.home() / ".cache" / "knnclip" / f"moto-{MOTO_VERSION}")


def install_hint() -> str:
    """The command that installs moto where `moto_path()` looks."""
    return f"{sys.executable} -m pip install --target {moto_path()} 'moto[server]=={MOTO_VERSION}'"


def credentials() -> dict:
    """AWS_* variables for the store, from the environment (moto accepts any key; defaults are for local use only)."""
    return {"AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "knnclip-local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "knnclip-local-secret"),
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", REGION)}


@dataclass
class S3Server(Service):
    """A running S3 server; `env` holds the endpoint and credentials clients need, `bucket` the bucket made."""

    bucket: str = DEFAULT_BUCKET

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def uri(self, *parts: str) -> str:
        """s3://<bucket>/<parts...>."""
        return "/".join([f"s3://{self.bucket}", *[p.strip("/") for p in parts]])

    def client(self):
        """A boto3 S3 client of this server."""
        return client(self.url, self.env)

    def storage_options(self) -> dict:
        """LanceDB/object_store options for this server."""
        return {"endpoint": self.url, "aws_access_key_id": self.env["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": self.env["AWS_SECRET_ACCESS_KEY"], "region": self.env["AWS_DEFAULT_REGION"],
                "allow_http": "true"}


def client(endpoint: str, env: dict):
    """A boto3 S3 client of the server at `endpoint` with the AWS_* credentials of `env`."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        region_name=env.get("AWS_DEFAULT_REGION", REGION))


def create_bucket(endpoint: str, bucket: str, env: dict) -> None:
    """Create `bucket` on the server at `endpoint` (boto3 when importable, else a plain HTTP PUT); idempotent."""
    try:
        s3 = client(endpoint, env)
    except ImportError:
        req = urllib.request.Request(f"{endpoint}/{bucket}", method="PUT", data=b"")
        with urllib.request.urlopen(req, timeout=10):
            return
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)


def _repair(recording: Path) -> None:
    """Drop a last line cut short by a kill, so that the replay reads only whole requests."""
    data = recording.read_bytes()
    if data and not data.endswith(b"\n"):
        recording.write_bytes(data[: data.rfind(b"\n") + 1])


def _replay(endpoint: str) -> None:
    req = urllib.request.Request(f"{endpoint}/moto-api/recorder/replay-recording", method="POST", data=b"")
    with urllib.request.urlopen(req, timeout=300):
        pass


def start_s3(root: Path, bucket: str = DEFAULT_BUCKET, port: Optional[int] = None, persist: bool = True,
             timeout: float = 60.0) -> S3Server:
    """Start moto's S3 server on 127.0.0.1 (free port when None) and create `bucket`; with `persist`, replay the
    writes recorded in root/s3 by earlier runs. Returns an S3Server; raises StackError naming the log."""
    root = Path(root).resolve()
    target = moto_path()
    if not (target / "moto" / "server.py").exists():
        raise StackError(f"moto[server] is not installed in {target}; run: {install_hint()}")
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    creds = credentials()
    store = root / "s3"
    store.mkdir(parents=True, exist_ok=True)
    recording = store / "recording.jsonl"
    had_data = recording.exists() and recording.stat().st_size > 0
    if had_data:
        _repair(recording)
    env = {"PYTHONPATH": str(target), **creds}
    if persist:
        env.update({"MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)})
    proc, log = spawn("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], root, env=env)
    srv = S3Server(name="s3", url=endpoint, pid=proc.pid, log=log, proc=proc, bucket=bucket,
                   env={**creds, "AWS_ENDPOINT_URL_S3": endpoint, "MLFLOW_S3_ENDPOINT_URL": endpoint, "KNNCLIP_S3_ENDPOINT": endpoint,
                        "AWS_ALLOW_HTTP": "true"})
    try:
        wait_until("S3 server", lambda: http_ok(f"{endpoint}/moto-api/"), log, timeout, proc)
        if persist and had_data:
            _replay(endpoint)
        create_bucket(endpoint, bucket, creds)
    except Exception as exc:
        srv.stop()
        if isinstance(exc, StackError):
            raise
        raise StackError(f"S3 server at {endpoint} did not accept the bucket {bucket!r} ({exc}); see {log}") from exc
    return srv


