"""Helpers of the store scenarios (corrupt_stores, disk_full) and their tests: damage an
SQLite file or a LanceDB table the ways a bad disk or a bad hand does, and a small tmpfs
that the kernel fills up (ENOSPC from the OS itself, nothing patched in Python)."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Optional

SQLITE_DAMAGES = ("page", "truncated", "text", "zeroed_header", "empty_pages")
TABLE_DAMAGES = ("truncated_data", "deleted_data", "garbage_data", "no_versions", "garbage_manifest")


def damage_sqlite(db: Path, how: str, rng: Optional[random.Random] = None, table: Optional[str] = None) -> str:
    """Damage the SQLite file `db` by `how` (one of SQLITE_DAMAGES; `page`: the root page of
    `table`, default a random table with rows); returns what was done."""
    import sqlite3

    rng = rng or random.Random(0)
    con = sqlite3.connect(str(db))  # the damage must be in the file itself: fold the WAL in first
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    size = db.stat().st_size
    pages = max(2, size // 4096)
    if how == "page":  # the root page of a table with rows overwritten with random bytes
        page, page_size = _root_page(db, rng, table)
        with open(db, "r+b") as f:
            f.seek(page_size * (page - 1))
            f.write(bytes(rng.getrandbits(8) for _ in range(page_size)))
        return f"page {page} of {pages} overwritten"
    if how == "truncated":
        keep = rng.randrange(4096, max(4097, size - 4096))
        os.truncate(db, keep)
        return f"truncated to {keep} of {size} bytes"
    if how == "text":
        db.write_text("this is not a database\n" * rng.randint(1, 50))
        return "replaced by a text file"
    if how == "zeroed_header":
        with open(db, "r+b") as f:
            f.write(b"\0" * 100)
        return "header zeroed"
    with open(db, "r+b") as f:  # empty_pages: every page after the first zeroed
        f.seek(4096)
        f.write(b"\0" * (size - 4096))
    return "every page after the first zeroed"


def _root_page(db: Path, rng: random.Random, table: Optional[str] = None) -> tuple[int, int]:
    """(root page number of `table`, default of a random non-empty table other than page 1,
    page size) of `db`."""
    import sqlite3

    con = sqlite3.connect(str(db))
    try:
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        roots = [(name, root) for name, root in con.execute("SELECT name, rootpage FROM sqlite_master "
                                                             "WHERE type='table' AND rootpage > 1")]
        full = [root for name, root in roots if name == table or (table is None and con.execute(
            f'SELECT 1 FROM "{name}" LIMIT 1').fetchone())]
    finally:
        con.close()
    return rng.choice(sorted(full)), page_size


def damage_table(folder: Path, how: str, rng: Optional[random.Random] = None) -> str:
    """Damage the LanceDB table folder `folder` by `how` (one of TABLE_DAMAGES)."""
    rng = rng or random.Random(0)
    data = sorted((folder / "data").glob("*.lance"))
    if how == "no_versions":
        shutil.rmtree(folder / "_versions")
        return "_versions/ removed"
    if how == "garbage_manifest":
        manifests = sorted((folder / "_versions").glob("*.manifest"))
        victim = manifests[0]  # the newest (versions are named in descending order)
        victim.write_bytes(bytes(rng.getrandbits(8) for _ in range(victim.stat().st_size or 64)))
        return f"manifest {victim.name} overwritten"
    for f in data:
        size = f.stat().st_size
        if how == "truncated_data":
            os.truncate(f, rng.randrange(0, max(1, size - 1)))
        elif how == "deleted_data":
            f.unlink()
        else:  # garbage_data: the file's tail (its footer) overwritten
            with open(f, "r+b") as fh:
                fh.seek(max(0, size - 64))
                fh.write(bytes(rng.getrandbits(8) for _ in range(min(64, size))))
    return f"{how.replace('_', ' ')} ({len(data)} files)"


def mount_tmpfs(mnt: Path, size_bytes: int) -> bool:
    """Mount a tmpfs of `size_bytes` at `mnt` (created); False where that is not allowed."""
    mnt.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount"):
        return False
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0700", "tmpfs", str(mnt)],
                         capture_output=True)
    return res.returncode == 0 and os.path.ismount(mnt)


def unmount(mnt: Path) -> None:
    """Unmount the tmpfs at `mnt` (lazily, so open handles do not keep it)."""
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill_disk(mnt: Path, leave: int = 0) -> Path:
    """Fill the filesystem of `mnt` up to `leave` free bytes with one file; returns it
    (delete it to free the space again)."""
    filler = mnt / f".filler-{os.getpid()}"
    filler.unlink(missing_ok=True)
    free = shutil.disk_usage(mnt).free
    want = max(0, free - leave)
    with open(filler, "wb") as f:
        if want:
            try:
                os.posix_fallocate(f.fileno(), 0, want)
            except OSError:
                pass
    while shutil.disk_usage(mnt).free > leave + 4096:  # fallocate may round: top up
        with open(filler, "ab") as f:
            try:
                f.write(b"\0" * min(1 << 20, shutil.disk_usage(mnt).free - leave))
            except OSError:
                break
    return filler


# --- the CLI in this process, and what a case's outcome means -------------------------------

def cli(home: Path, *argv: str) -> tuple[int, str, bool]:
    """Run `knnclip --home HOME argv` in this process: (exit code, stderr, traceback?). An
    exception escaping the CLI is what a user would see as a traceback (exit 1)."""
    import contextlib
    import io
    import traceback

    from knnclip_core.cli.main import main

    saved = {k: os.environ.get(k) for k in ("KNNCLIP_HOME", "KNNCLIP_CONFIG")}
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                rc = main(["--home", str(home), *argv])
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
            except Exception:  # noqa: BLE001 - counted, not raised
                traceback.print_exc()
                rc = 1
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    text = err.getvalue()
    return rc, text, "Traceback" in text


def sentence(stderr: str) -> Optional[str]:
    """The one `knnclip <command>: ...` line of stderr, or None when there is not exactly one."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("knnclip ")]
    return lines[0] if len(lines) == 1 else None


# MLflow's columns that hold artifact paths inside the workspace
MLFLOW_PATH_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                       ("model_versions", "source"), ("model_versions", "storage_location"))


def copy_workspace(src: Path, dst: Path) -> Path:
    """A copy of the workspace `src` at `dst` (replacing it), relocated: its MLflow store names
    the copy's artifacts, as a workspace built at `dst` would (a plain `cp -a` copy is refused
    by the registry, rightly: it would write into the original's artifacts)."""
    import sqlite3

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)
    db = dst / "mlflow" / "mlflow.db"
    if db.is_file():
        old, new = f"{Path(src).resolve()}/", f"{Path(dst).resolve()}/"
        with sqlite3.connect(db) as conn:
            for table, column in MLFLOW_PATH_COLUMNS:
                conn.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (old, new))
    return dst


def staged_workspaces(workdir: Path, seed: int) -> dict:
    """{'data', 'ingested', 'embedded', 'curated', 'published'}: a small sample dataset and
    copies of one workspace after each stage (run in this process). Raises RuntimeError
    when a stage fails."""
    from knnclip_core.sample_data import write_sample_dataset

    data = write_sample_dataset(workdir / "data", images=8, classes=3, seed=seed)
    home, out = workdir / "build", {"data": data}
    for stage, argv in (("ingested", ["ingest", str(data)]), ("embedded", ["embed"]), ("curated", ["curate"]),
                        ("published", ["publish"])):
        rc, err, _ = cli(home, *argv)
        if rc != 0:
            raise RuntimeError(f"{argv[0]} failed while preparing the workspaces: {err[-1500:]}")
        out[stage] = copy_workspace(home, workdir / stage)
    return out
