"""PostgreSQL from the machine's packages: initdb + pg_ctl under root/postgres, loopback TCP only, and always a
password (scram-sha-256; pg_hba.conf trusts no one, not even loopback)."""
from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from knnclip_core.net import free_port

from deploy.process import Service, StackError, logs_dir, wait_until, write_private

DATABASES = ("catalog", "mlflow", "prefect")
USER = "knnclip"
PASSWORD_ENV = "KNNCLIP_PG_PASSWORD"  # the role's password; generated for a new data folder when unset
HBA = ("# written by deploy/postgres.py at every start: password (scram-sha-256) on loopback TCP, nothing else\n"
       "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n")


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
    """A running PostgreSQL; `db_url(db)` gives a SQLAlchemy URL for a database on it (password included)."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = USER
    password: str = field(default="", repr=False)

    def db_url(self, db: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of database `db` (driver psycopg | asyncpg | '' for plain postgresql://)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        pw = self.password or os.environ.get(PASSWORD_ENV)
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


def _init(bindir: Path, data: Path, log: Path, password: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    _chown_to_owner(data)
    os.chmod(data, 0o700)
    if os.geteuid() == 0 and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(data)]).returncode != 0:
        raise StackError(f"the postgres user cannot reach {data}: make its parent folders traversable (chmod o+x)")
    pwfile = write_private(data.parent / ".pwfile", password)  # a file, not argv: `ps` shows argv to everyone
    _chown_to_owner(pwfile)
    cmd = [str(bindir / "initdb"), "-D", str(data), "-U", USER, "--encoding=UTF8", "--no-sync",
           "-A", "scram-sha-256", f"--pwfile={pwfile}"]
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


def _trusts(data: Path) -> bool:
    """True when data/pg_hba.conf lets anyone in without a password (a folder made by older code)."""
    hba = data / "pg_hba.conf"
    lines = hba.read_text().splitlines() if hba.exists() else []
    return any(ln.split()[-1:] == ["trust"] for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))


def _write_hba(data: Path) -> None:
    """Make data/pg_hba.conf password-only (HBA), whatever it said before."""
    hba = data / "pg_hba.conf"
    if not hba.exists() or hba.read_text() != HBA:
        hba.write_text(HBA)
        _chown_to_owner(hba)
        os.chmod(hba, 0o600)


def _set_password(pg: "Postgres", password: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg.db_url("postgres", driver=""), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(pg.user), sql.Literal(password)))


def start_postgres(root: Path, port: Optional[int] = None, databases: tuple[str, ...] = DATABASES,
                   timeout: float = 60.0, durable: bool = True, password: Optional[str] = None) -> Postgres:
    """Start PostgreSQL with its data in root/postgres/data (initdb on first use) on 127.0.0.1:`port`
    (free port when None), create `databases`; `durable=False` turns fsync off (tests: faster, and a crash of
    the machine may lose the data). Returns a Postgres service; raises StackError naming the log.
    Clients always need the password (scram-sha-256): `password`, else KNNCLIP_PG_PASSWORD, else one generated
    for a new data folder; an existing folder needs the one it was made with (a stack keeps it in stack.env)."""
    root = Path(root).resolve()
    bindir = pg_bindir()
    base = root / "postgres"
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    log = logs_dir(root) / "postgres.log"
    _chown_to_owner(log.parent)
    password = password or os.environ.get(PASSWORD_ENV)
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        password = password or secrets.token_urlsafe(24)
        _init(bindir, data, log, password)
    elif not password:
        raise StackError(f"the PostgreSQL data in {data} is protected by a password: set {PASSWORD_ENV} to it "
                         "(a stack keeps it in its stack.env)")
    trusted = _trusts(data)  # a folder made by older code (trust on loopback) gets a password once it is up
    if not trusted:
        _write_hba(data)
    port = port or free_port()
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200"
    if not durable:
        opts += " -c fsync=off -c synchronous_commit=off"
    log.touch()
    _chown_to_owner(log)
    _run([str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log), "-w", "-t", str(int(timeout)), "start"],
         log, "start")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    pg = Postgres(name="postgres", url=f"postgresql://{USER}@127.0.0.1:{port}", pid=pid, log=log, port=port,
                  password=password)
    pg.env = {"KNNCLIP_PG_HOST": "127.0.0.1", "KNNCLIP_PG_PORT": str(port)}
    pg.stopper = lambda: stop_data_dir(root)

    def ready() -> bool:
        create_databases(pg, databases)
        return True

    if trusted:
        wait_until("PostgreSQL", lambda: _set_password(pg, password) or True, log, timeout)
        _write_hba(data)
        _run([str(bindir / "pg_ctl"), "-D", str(data), "reload"], log, "reload")
    wait_until("PostgreSQL", ready, log, timeout)
    return pg


def stop_data_dir(root: Path) -> None:
    """`pg_ctl stop -m fast` on root/postgres/data; raises StackError naming the log when it fails."""
    root = Path(root).resolve()
    data = root / "postgres" / "data"
    if (data / "postmaster.pid").exists():
        _run([str(pg_bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], logs_dir(root) / "postgres.log",
             "stop")
