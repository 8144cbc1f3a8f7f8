"""PostgreSQL from the machine's packages: initdb + pg_ctl under root/postgres, loopback TCP only."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.process import Service, StackError, logs_dir, wait_until

DATABASES = ("catalog", "mlflow", "prefect")
USER = "knnclip"
PASSWORD_ENV = "KNNCLIP_PG_PASSWORD"  # optional; trust on loopback when unset


def pg_bindir() -> Path:
    """Folder holding initdb and pg_ctl (PATH, else the newest /usr/lib/postgresql/*/bin); raises StackError."""
    found = shutil.which("initdb") or shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not cands:
        raise StackError("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin); "
                         "install it, e.g. `apt-get install postgresql`")
    return Path(cands[-1]).parent


@dataclass
class Postgres(Service):
    """A running PostgreSQL; `db_url(db)` gives a SQLAlchemy URL for a database on it."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = USER

    def db_url(self, db: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of database `db` (driver psycopg | asyncpg | '' for plain postgresql://)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        pw = os.environ.get(PASSWORD_ENV)
        cred = f"{self.user}:{pw}" if pw else self.user
        return f"{scheme}://{cred}@{self.host}:{self.port}/{db}"


def _as_owner(cmd: list[str]) -> list[str]:
    """`cmd` run as the `postgres` user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError("running as root needs a `postgres` system user to own the database files") from exc
    return ["runuser", "-u", "postgres", "--", *cmd]


def _chown_to_owner(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _run(cmd: list[str], log: Path, what: str) -> None:
    with open(log, "ab") as out:
        rc = subprocess.run(_as_owner(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        raise StackError(f"PostgreSQL {what} failed (exit {rc}); see {log}")


def _init(bindir: Path, data: Path, log: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    _chown_to_owner(data)
    os.chmod(data, 0o700)
    if os.geteuid() == 0 and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(data)]).returncode != 0:
        raise StackError(f"the postgres user cannot reach {data}: make its parent folders traversable (chmod o+x)")
    cmd = [str(bindir / "initdb"), "-D", str(data), "-U", USER, "--encoding=UTF8", "--no-sync"]
    pw = os.environ.get(PASSWORD_ENV)
    pwfile = data.parent / ".pwfile"
    if pw:
        pwfile.write_text(pw)
        _chown_to_owner(pwfile)
        cmd += ["-A", "scram-sha-256", f"--pwfile={pwfile}"]
    else:
        cmd += ["-A", "trust"]
    try:
        _run(cmd, log, "initdb")
    finally:
        pwfile.unlink(missing_ok=True)


def create_databases(pg: Postgres, names: tuple[str, ...]) -> None:
    """Create each database of `names` missing on `pg`."""
    import psycopg

    with psycopg.connect(pg.db_url("postgres", driver=""), autocommit=True, connect_timeout=5) as conn:
        have = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in have:
                conn.execute(f'CREATE DATABASE "{name}"')


def start_postgres(root: Path, port: Optional[int] = None, databases: tuple[str, ...] = DATABASES,
                   timeout: float = 60.0, durable: bool = True) -> Postgres:
    """Start PostgreSQL with its data in root/postgres/data (initdb on first use) on 127.0.0.1:`port`
    (free port when None), create `databases`; `durable=False` turns fsync off (tests: faster, and a crash of
    the machine may lose the data). Returns a Postgres service; raises StackError naming the log.
    With KNNCLIP_PG_PASSWORD set at initdb, clients need that password (scram-sha-256), else loopback is trusted."""
    root = Path(root).resolve()
    bindir = pg_bindir()
    base = root / "postgres"
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    log = logs_dir(root) / "postgres.log"
    _chown_to_owner(log.parent)
    if not (data / "PG_VERSION").exists():
        _init(bindir, data, log)
    port = port or free_port()
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200"
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off"
    log.touch()
    _chown_to_owner(log)
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", str(int(timeout)), "start"],
         log, "start")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    pg = Postgres(name="postgres", url=f"postgresql://{USER}@127.0.0.1:{port}", pid=pid, log=log, port=port)
    pg.env = {"KNNCLIP_PG_HOST": "127.0.0.1", "KNNCLIP_PG_PORT": str(port)}
    pg.stopper = lambda: stop_data_dir(root)

    def ready() -> bool:
        create_databases(pg, databases)
        return True

    wait_until("PostgreSQL", ready, log, timeout)
    return pg


def stop_data_dir(root: Path) -> None:
    """`pg_ctl stop -m fast` on root/postgres/data; raises StackError naming the log when it fails."""
    root = Path(root).resolve()
    data = root / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        _run([str(pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], logs_dir(root) / "postgres.log",
             "stop")
