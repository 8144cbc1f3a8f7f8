"""A Dask cluster for the embedding shards: one scheduler and N single-threaded worker processes, TLS only.

A Dask scheduler runs whatever its clients submit, so it must not take any client that can reach
its port: the scheduler, the workers and every client authenticate each other with a certificate
of the stack's own (mutual TLS, `require_encryption`). The key lives in an owner-only folder
(root/dask-tls, 0700); stack.env names the files through dask's own settings
(DASK_DISTRIBUTED__COMM__TLS__*), so `distributed.Client(address)` and Prefect's DaskTaskRunner
in a process with stack.env pick them up; `security(env)` builds the same Security explicitly.
"""
from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.process import Service, launch, private_dir, spawn, wait_until, write_private

TLS_DIR = "dask-tls"
_CONF = "DASK_DISTRIBUTED__COMM__"


def tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a TCP connection to host:port succeeds."""
    with socket.create_connection((host, port), timeout=timeout):
        return True


def make_tls(folder: Path) -> dict:
    """A self-signed certificate and its key for every role of the cluster in `folder` (0700; files 0600),
    made once and reused; returns the dask settings (environment variables) that point at them."""
    folder = private_dir(Path(folder).resolve())
    cert, key = folder / "cluster.pem", folder / "cluster-key.pem"
    if not (cert.exists() and key.exists()):
        from distributed.security import Security

        tmp = Security.temporary()  # a fresh RSA key and a certificate signed by it (needs `cryptography`)
        write_private(key, tmp.tls_client_key)
        write_private(cert, tmp.tls_client_cert)
    env = {f"{_CONF}REQUIRE_ENCRYPTION": "True", f"{_CONF}TLS__CA_FILE": str(cert)}
    for role in ("CLIENT", "SCHEDULER", "WORKER"):
        env.update({f"{_CONF}TLS__{role}__CERT": str(cert), f"{_CONF}TLS__{role}__KEY": str(key)})
    return env


def security(env: dict):
    """The distributed Security of a client with the TLS settings in `env` (see make_tls)."""
    from distributed.security import Security

    return Security(tls_ca_file=env[f"{_CONF}TLS__CA_FILE"], tls_client_cert=env[f"{_CONF}TLS__CLIENT__CERT"],
                    tls_client_key=env[f"{_CONF}TLS__CLIENT__KEY"], require_encryption=True)


def _tls_args(env: dict, role: str) -> list[str]:
    return ["--tls-ca-file", env[f"{_CONF}TLS__CA_FILE"], "--tls-cert", env[f"{_CONF}TLS__{role}__CERT"],
            "--tls-key", env[f"{_CONF}TLS__{role}__KEY"]]  # file names only: `ps` shows argv to everyone


def start_dask_scheduler(root: Path, env: Optional[dict] = None, port: Optional[int] = None,
                         timeout: float = 60.0) -> Service:
    """Start a TLS-only Dask scheduler on 127.0.0.1 (free port when None) with the certificate of
    root/dask-tls (made when missing); returns a Service whose url is tls://... and env
    KNNCLIP_DASK_ADDRESS plus the TLS settings; raises StackError naming the log."""
    root = Path(root).resolve()
    port = port or free_port()
    tls = make_tls(root / TLS_DIR)
    cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
           "--protocol", "tls", "--no-dashboard", *_tls_args(tls, "SCHEDULER")]
    url = f"tls://127.0.0.1:{port}"
    return launch("dask-scheduler", "Dask scheduler", cmd, root, url, lambda: tcp_open("127.0.0.1", port),
                  env={**(env or {}), **tls}, client_env={"KNNCLIP_DASK_ADDRESS": url, **tls}, timeout=timeout)


def start_dask_worker(root: Path, scheduler: Service, name: str, env: Optional[dict] = None) -> Service:
    """Start one Dask worker process (1 thread) named `name` attached to `scheduler` over TLS, working in
    root/dask/<name>, with `env` (the machine's knnclip variables: embedding tasks read secrets from it).
    Readiness: see wait_workers."""
    root = Path(root).resolve()
    workdir = root / "dask" / name
    workdir.mkdir(parents=True, exist_ok=True)
    wenv = {**(env or {}), **{k: v for k, v in scheduler.env.items() if k.startswith(_CONF)}}
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler.url, "--name", name, "--nthreads", "1",
           "--nworkers", "1", "--host", "127.0.0.1", "--protocol", "tls", "--no-dashboard", "--local-directory", str(workdir),
           "--memory-limit", "0", *_tls_args(wenv, "WORKER")]
    proc, log = spawn(name, cmd, root, env=wenv, cwd=workdir)
    return Service(name=name, url=scheduler.url, pid=proc.pid, log=log, proc=proc)


def wait_workers(scheduler: Service, n: int, timeout: float = 90.0) -> None:
    """Wait until `n` workers are connected to `scheduler`; raises StackError naming the scheduler's log."""
    from distributed import Client

    def ready() -> bool:
        with Client(scheduler.url, timeout=5, security=security(scheduler.env)) as c:
            return len(c.scheduler_info(n_workers=-1)["workers"]) >= n

    wait_until(f"Dask cluster ({n} workers)", ready, scheduler.log, timeout)
