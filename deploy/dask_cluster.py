"""A Dask cluster for the embedding shards: one scheduler and N single-threaded worker processes."""
from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.process import Service, launch, spawn, wait_until



def tcp_open(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when a TCP connection to host:port succeeds."""
    with socket.create_connection((host, port), timeout=timeout):
        return True


def start_dask_scheduler(root: Path, env: Optional[dict] = None, port: Optional[int] = None,
                         timeout: float = 60.0) -> Service:
    """Start a Dask scheduler on 127.0.0.1 (free port when None); returns a Service whose url is tcp://...
    and env KNNCLIP_DASK_ADDRESS; raises StackError naming the log."""
    root = Path(root).resolve()
    port = port or free_port()
    cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
           "--no-dashboard"]
    url = f"tcp://127.0.0.1:{port}"
    return launch("dask-scheduler", "Dask scheduler", cmd, root, url, lambda: tcp_open("127.0.0.1", port), env=env,
                  client_env={"KNNCLIP_DASK_ADDRESS": url}, timeout=timeout)


def start_dask_worker(root: Path, scheduler: Service, name: str, env: Optional[dict] = None) -> Service:
    """Start one Dask worker process (1 thread) named `name` attached to `scheduler`, working in root/dask/<name>,
    with `env` (the machine's knnclip variables: embedding tasks read secrets from it). Readiness: see wait_workers."""
    root = Path(root).resolve()
    workdir = root / "dask" / name
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler.url, "--name", name, "--nthreads", "1",
           "--nworkers", "1", "--no-dashboard", "--local-directory", str(workdir), "--memory-limit", "0"]
    proc, log = spawn(name, cmd, root, env=env, cwd=workdir)
    return Service(name=name, url=scheduler.url, pid=proc.pid, log=log, proc=proc)


def wait_workers(scheduler: Service, n: int, timeout: float = 90.0) -> None:
    """Wait until `n` workers are connected to `scheduler`; raises StackError naming the scheduler's log."""
    from distributed import Client

    def ready() -> bool:
        with Client(scheduler.url, timeout=5) as c:
            return len(c.scheduler_info(n_workers=-1)["workers"]) >= n

    wait_until(f"Dask cluster ({n} workers)", ready, scheduler.log, timeout)
