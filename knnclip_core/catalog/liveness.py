"""Which runs are really still running: every ingest batch and curation run records the
process that started it (host, pid, and the pid's start time, so a reused pid is not
mistaken for the owner). A `running` row whose owner died on this host, or that is older
than STALE_AFTER_S when its owner is elsewhere or unknown, was interrupted: the next
process that opens the catalog marks it failed, with the reason.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from datetime import datetime, timedelta, timezone
from typing import Optional

import psutil
from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, select

from .models import CurationRun, IngestBatch, utcnow

logger = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600  # a run nobody can check on (another host, no owner) counts as dead after this


class RunOwner(SQLModel, table=True):
    """The process that started an ingest batch or a curation run."""

    kind: str = Field(primary_key=True)  # ingest | curate
    run_id: str = Field(primary_key=True)
    host: str
    pid: int
    pid_started: float  # psutil create_time of the pid


def owner_identity() -> dict:
    """{'host', 'pid', 'pid_started'} of this process."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_started": psutil.Process(pid).create_time()}


def owner_alive(host: Optional[str], pid: Optional[int], pid_started: Optional[float]) -> Optional[bool]:
    """True/False for an owner on this host (the same pid with the same start time alive),
    None when it cannot be told (another host, or no owner recorded)."""
    if host is None or pid is None or host != socket.gethostname():
        return None
    try:
        return abs(psutil.Process(int(pid)).create_time() - float(pid_started or 0)) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def _record(kind: str):
    def after_insert(mapper, connection, target) -> None:
        connection.execute(RunOwner.__table__.insert().values(kind=kind, run_id=str(target.id), **owner_identity()))
    return after_insert


event.listen(IngestBatch, "after_insert", _record("ingest"))
event.listen(CurationRun, "after_insert", _record("curate"))


def _aware(t: Optional[datetime]) -> datetime:
    t = t or utcnow()
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def mark_stale_runs(engine) -> list[tuple[str, str]]:
    """Mark interrupted `running` ingest batches and curation runs failed. Returns
    [(kind, run id)] of the rows it marked."""
    marked = []
    old = datetime.now(timezone.utc) - timedelta(seconds=STALE_AFTER_S)
    with Session(engine) as s:
        for kind, model in (("ingest", IngestBatch), ("curate", CurationRun)):
            for row in s.exec(select(model).where(model.status == "running")).all():
                owner = s.get(RunOwner, (kind, str(row.id)))
                alive = owner_alive(owner.host, owner.pid, owner.pid_started) if owner else None
                if alive or (alive is None and _aware(row.started) > old):
                    continue
                who = f"process {owner.pid} on {owner.host}" if owner else "its process"
                row.status = "failed"
                row.finished = utcnow()
                reason = f"interrupted: {who} ended without finishing this run (marked failed by a later run)"
                if kind == "ingest":
                    row.error = reason
                else:
                    row.report_json = json.dumps({"error": reason})
                s.add(row)
                marked.append((kind, str(row.id)))
        s.commit()
    for kind, run_id in marked:
        logger.warning("%s run %s was interrupted (its process is gone); marked failed", kind, run_id)
    return marked
