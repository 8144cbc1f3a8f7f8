"""The whole local topology in one call: `up` starts every service under one root, writes root/stack.json
(PIDs with their start times and argv, ports, URLs, logs; no secrets) and root/stack.env (the variables a
machine needs, secrets included, mode 0600); `status` checks each service; `down` stops what `up` started,
exactly those processes, keeping the data unless purged. Every service but the S3 stand-in requires a
credential: see README, "Beyond one machine"."""
from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from deploy.dask_cluster import start_dask_scheduler, start_dask_worker, tcp_open, wait_workers
from deploy.mlflow_server import start_mlflow
from deploy.postgres import Postgres, start_postgres
from deploy.prefect_stack import REPO, start_prefect_server, start_prefect_worker
from deploy.process import Service, StackError, http_ok, identity, same_process, stop_group
from deploy.s3 import S3Server, credentials, start_s3
from deploy.serve import start_serve
from knnclip_core.redact import redact_text

STATE_FILE = "stack.json"
ENV_FILE = "stack.env"
SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "KNNCLIP_WORKER_TOKEN", "KNNCLIP_PG_PASSWORD", "MLFLOW_TRACKING_PASSWORD",
               "PREFECT_API_AUTH_STRING")
HEALTH = {"mlflow": "/health", "prefect-server": "/health", "serve": "/healthz"}


@dataclass
class StackOptions:
    """What `up` starts: replicas of `knnclip serve` following `alias`, Dask workers, the Prefect worker."""

    serve_replicas: int = 2
    dask_workers: int = 2
    alias: str = "production"
    poll_seconds: float = 2.0
    prefect: bool = True
    dask: bool = True


@dataclass
class Stack:
    """Running services by name (start order) and the environment a client machine needs."""

    root: Path
    services: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)

    def add(self, svc: Service, kind: str) -> Service:
        """Record `svc` as a service of kind `kind` and save the state; returns `svc`."""
        svc.kind = kind
        self.services[svc.name] = svc
        self.save()
        return svc

    def save(self) -> None:
        """Write root/stack.json (no secrets) and root/stack.env (0600)."""
        state = {"root": str(self.root), "services": {n: {"kind": s.kind, "pid": s.pid, "url": s.url,
                                                          "log": str(s.log) if s.log else None,
                                                          **(self._identity(s) or {})}
                                                      for n, s in self.services.items()},
                 "env": {k: redact_text(v) for k, v in self.env.items() if k not in SECRET_VARS}}
        (self.root / STATE_FILE).write_text(json.dumps(state, indent=2))
        envf = self.root / ENV_FILE
        envf.touch(mode=0o600)
        os.chmod(envf, 0o600)
        envf.write_text("".join(f"export {k}={_quote(v)}\n" for k, v in sorted(self.env.items())))

    def _identity(self, svc: Service) -> Optional[dict]:
        """The pid's start time and argv, read once while the process is known to be ours (see process.identity)."""
        if not svc.pid:
            return None
        if getattr(svc, "_identity", None) is None:
            svc._identity = identity(svc.pid)
        return svc._identity

    def stop(self) -> None:
        """Stop every service, last started first."""
        for svc in reversed(list(self.services.values())):
            svc.stop()


def _quote(v: str) -> str:
    return "'" + str(v).replace("'", "'\\''") + "'"


def read_env_file(root: Path) -> dict:
    """The variables of root/stack.env ({} when there is none)."""
    path = Path(root) / ENV_FILE
    if not path.exists():
        return {}
    import shlex

    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            key, value = line[len("export "):].split("=", 1)
            out[key] = " ".join(shlex.split(value))
    return out


def _secrets(root: Path) -> dict:
    """Secrets from the environment, else from the stack.env an earlier `up` of this root wrote (the data folders
    need the same passwords again), else generated for a new local stack (and kept in stack.env)."""
    before = read_env_file(root)

    def pick(name: str, make) -> str:
        return os.environ.get(name) or before.get(name) or make()

    token = lambda: secrets.token_urlsafe(24)  # noqa: E731
    out = {**credentials(), **{k: before[k] for k in ("AWS_ACCESS_KEY_ID",) if k in before and k not in os.environ}}
    out["AWS_SECRET_ACCESS_KEY"] = pick("AWS_SECRET_ACCESS_KEY", token)
    for name in ("KNNCLIP_WORKER_TOKEN", "KNNCLIP_PG_PASSWORD", "MLFLOW_TRACKING_PASSWORD"):
        out[name] = pick(name, token)
    out["PREFECT_API_AUTH_STRING"] = pick("PREFECT_API_AUTH_STRING", lambda: f"knnclip:{token()}")
    return out


# MLflow's client retries 7 times with doubling back-off by default: a publisher facing a dead
# tracking server would hang for minutes. Three retries fail it within about 15 s.
MLFLOW_CLIENT_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3"}


def client_env(pg: Postgres, s3: S3Server, mlflow: Service) -> dict:
    """The variables every machine of the topology shares (stores and servers), without per-machine ones."""
    return {**s3.env, **mlflow.env, "KNNCLIP_CATALOG_URL": pg.db_url("catalog"),
            "KNNCLIP_MEMORY_URI": s3.uri("memory"), "PYTHONPATH": str(REPO), **MLFLOW_CLIENT_RETRIES}


def up(root: Path, opts: Optional[StackOptions] = None, pg: Optional[Postgres] = None,
       s3: Optional[S3Server] = None, mlflow: Optional[Service] = None) -> Stack:
    """Start the topology under `root` (services given as arguments are reused, not started); returns the Stack.
    On a failure, what this call started is stopped again and the StackError is raised."""
    opts = opts or StackOptions()
    root = Path(root).resolve()
    if (root / STATE_FILE).exists() and any(r["running"] for r in status(root).values()):
        raise StackError(f"a stack is already up under {root}; run `knnclip stack down --root {root}` first")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # the postgres user must reach root/postgres
    sec = _secrets(root)
    old = {k: os.environ.get(k) for k in sec}
    os.environ.update(sec)  # the starters read secrets from the environment
    stack = Stack(root=root)
    started: list[Service] = []  # what this call must stop on failure

    def keep(svc: Service, kind: str) -> Service:
        started.append(svc)
        return stack.add(svc, kind)

    try:
        for svc, kind in ((pg, "postgres"), (s3, "s3"), (mlflow, "mlflow")):
            if svc is not None:
                stack.add(svc, kind)
        pg = pg or keep(start_postgres(root), "postgres")
        s3 = s3 or keep(start_s3(root), "s3")
        mlflow = mlflow or keep(start_mlflow(root, pg, s3), "mlflow")
        # what the running services really use wins (a reused PostgreSQL or MLflow brings its own password)
        stack.env = {**sec, **client_env(pg, s3, mlflow), "KNNCLIP_PG_PASSWORD": pg.password or sec["KNNCLIP_PG_PASSWORD"]}
        if opts.prefect:
            stack.env.update(keep(start_prefect_server(root, pg), "prefect-server").env)
        if opts.dask:
            sched = keep(start_dask_scheduler(root, env=stack.env), "dask-scheduler")
            stack.env.update(sched.env)
            for i in range(opts.dask_workers):
                keep(start_dask_worker(root, sched, f"dask-worker-{i + 1}", env=stack.env), "dask-worker")
            wait_workers(sched, opts.dask_workers)
        if opts.prefect:
            home = root / "machines" / "prefect-worker"
            w = keep(start_prefect_worker(root, stack.services["prefect-server"],
                                          {**stack.env, "KNNCLIP_HOME": str(home)}), "prefect-worker")
            stack.env.update(w.env)
        for i in range(opts.serve_replicas):
            keep(start_serve(root, f"serve-{i + 1}", opts.alias, stack.env, opts.poll_seconds), "serve")
    except BaseException:
        for svc in reversed(started):
            svc.stop()
        (root / STATE_FILE).unlink(missing_ok=True)
        raise
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    stack.save()
    return stack


def load_state(root: Path) -> dict:
    """root/stack.json; raises StackError when no stack was brought up there."""
    path = Path(root) / STATE_FILE
    if not path.exists():
        raise StackError(f"no stack state at {path}; run `knnclip stack up --root {root}` first")
    return json.loads(path.read_text())


def check(kind: str, info: dict, env: Optional[dict] = None) -> bool:
    """True when the service answers (HTTP health, TCP, SQL with the password of `env`) or, for workers, its
    process runs."""
    url = info["url"]
    try:
        if kind == "postgres":
            import psycopg

            with psycopg.connect(url + "/postgres", password=(env or {}).get("KNNCLIP_PG_PASSWORD"), connect_timeout=3):
                return True
        if kind == "s3":
            return http_ok(f"{url}/moto-api/")
        if kind == "dask-scheduler":
            host, port = url.rsplit("/", 1)[-1].split(":")
            return tcp_open(host, int(port))
        if kind in HEALTH:
            return http_ok(url.rstrip("/") + HEALTH[kind])
        return same_process(info["pid"], info)
    except Exception:  # noqa: BLE001 - any failure means not answering
        return False


def status(root: Path) -> dict:
    """{name: {kind, pid, url, running, answering, log}} for each service in root/stack.json."""
    state = load_state(root)
    env = read_env_file(root)
    return {n: {k: v for k, v in i.items() if k not in ("start_time", "cmdline")}
            | {"running": same_process(i["pid"], i), "answering": check(i["kind"], i, env)}
            for n, i in state["services"].items()}


def down(root: Path, purge: bool = False) -> list[str]:
    """Stop every service of root/stack.json, last started first; with `purge`, delete root. Returns the names."""
    root = Path(root).resolve()
    state = load_state(root)
    names = list(state["services"])
    for name in reversed(names):
        info = state["services"][name]
        if info["kind"] == "postgres":
            from deploy.postgres import stop_data_dir

            stop_data_dir(root)
        elif same_process(info["pid"], info):  # exactly the process `up` started: pid, start time and argv
            stop_group(info["pid"])
    (root / STATE_FILE).unlink(missing_ok=True)
    if purge:
        shutil.rmtree(root, ignore_errors=True)
    return names
