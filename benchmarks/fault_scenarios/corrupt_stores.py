"""Damaged stores: copies of a published workspace whose catalog (SQLite) is damaged (a page
overwritten, truncated, a text file, header or pages zeroed) or whose memory table (LanceDB)
is (data files truncated, deleted or overwritten, a manifest overwritten), then one command
each. A case passes when the command ends without a traceback, either refusing in one
sentence that names the damaged file (exit 2) or succeeding where it never reads the damage
(exit 0) - except ingest, which must refuse a damaged catalog and leave it byte for byte as
it was, and publish, which must not make a release from a damaged table. A table whose
`_versions/` is gone has no committed version: it is absent, and embed -> curate -> publish
must rebuild exactly the memory and release of the undamaged workspace."""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

from benchmarks.fault_scenarios import _stores, common

DEFAULT_CASES = 128  # every (damage, command) twice; ~0.3 s a case
CATALOG_COMMANDS = (("ingest",), ("embed",), ("curate",), ("memory", "stats"), ("memory", "history"),
                    ("quarantine", "list"), ("publish",), ("forget", "--dataset", "data"))
TABLE_COMMANDS = (("embed",), ("curate",), ("memory", "stats"), ("publish",))
TABLE_READ_DAMAGES = tuple(d for d in _stores.TABLE_DAMAGES if d != "no_versions")


def plan(cases: int, rng: random.Random) -> list[tuple]:
    """`cases` (kind, damage, command) in turn: catalog damages, table damages, no_versions."""
    units = [("catalog", d, c) for d in _stores.SQLITE_DAMAGES for c in CATALOG_COMMANDS]
    units += [("table", d, c) for d in TABLE_READ_DAMAGES for c in TABLE_COMMANDS]
    units += [("rebuild", "no_versions", ("embed", "curate", "publish"))] * 4
    rng.shuffle(units)
    return [units[i % len(units)] for i in range(cases)]


def _versions(home: Path) -> list:
    """Release versions in the workspace's MLflow store (read without the memory)."""
    return sorted(v for (v,) in common._sqlite_rows(home / "mlflow" / "mlflow.db", "SELECT version FROM model_versions"))


def _one(ws: dict, home: Path, kind: str, damage: str, command: tuple, rng: random.Random) -> tuple[list[str], int]:
    """(problems, tracebacks) of one case."""
    _stores.copy_workspace(ws["published"], home)
    if kind == "catalog":
        target = home / "catalog.db"
        what = _stores.damage_sqlite(target, damage, rng)
    else:
        (target,) = (home / "memory").glob("*.lance")
        what = _stores.damage_table(target, damage, rng)
        if kind == "rebuild":  # as a first write killed long ago leaves it
            old = time.time() - 3600
            for p in (target, *target.iterdir()):
                os.utime(p, (old, old))
    label = f"{kind} {what}: {' '.join(command)}"
    if kind == "rebuild":
        problems, tracebacks = [], 0
        for step in command:
            rc, err, tb = _stores.cli(home, step)
            tracebacks += tb
            if rc != 0:
                problems.append(f"{label}: {step} exit {rc}: {err.strip()[-300:]}")
        oracle, state = common.workspace_state(ws["published"]), common.workspace_state(home)
        if not problems and (state["memory"] != oracle["memory"] or state["versions"] != oracle["versions"]
                             or state["fingerprints"] != oracle["fingerprints"]):
            problems.append(f"{label}: the rebuilt memory or release differs from the undamaged one")
        return problems, tracebacks
    before = target.read_bytes() if kind == "catalog" else None
    versions = _versions(home) if command == ("publish",) and kind == "table" else None
    argv = (*command, str(ws["data"])) if command == ("ingest",) else command
    rc, err, tb = _stores.cli(home, *argv)
    line = sentence = _stores.sentence(err)
    if tb:
        return [f"{label}: traceback {err.strip()[-300:]}"], 1
    if rc == 2 and sentence and str(target) in sentence:
        problems = []
    elif rc == 0 and command != ("ingest",):
        problems = []
    else:
        problems = [f"{label}: exit {rc}, {line or err.strip()[-300:]!r}"]
    if before is not None and command == ("ingest",) and target.read_bytes() != before:
        problems.append(f"{label}: ingest wrote into the damaged catalog")
    if versions is not None and rc == 0 and _versions(home) != versions:
        problems.append(f"{label}: a release was published from a damaged table")
    return problems, 0


def run(workdir: Path, cases: int = DEFAULT_CASES, seed: int = 0) -> dict:
    """`cases` damaged workspaces, one command each. Returns the report."""
    import logging

    rng = random.Random(seed)
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)
    logging.disable(logging.WARNING)  # the warnings of set-aside tables, not the report
    try:
        ws = _stores.staged_workspaces(workdir, seed=seed + 5)
        failures, tracebacks, kinds = [], 0, {}
        for i, (kind, damage, command) in enumerate(plan(cases, rng)):
            problems, tb = _one(ws, workdir / f"case{i}", kind, damage, command, rng)
            tracebacks += tb
            kinds[kind] = kinds.get(kind, 0) + 1
            if problems:
                failures.append({"case": i, "problems": problems})
            _stores.shutil.rmtree(workdir / f"case{i}", ignore_errors=True)
    finally:
        logging.disable(logging.NOTSET)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    return {"cases": cases, "lost_or_corrupted": len(failures), "tracebacks": tracebacks, "kinds": kinds,
            "failures": failures[:10]}
