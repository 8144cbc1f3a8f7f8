"""Forgetting: a catalog ForgetRule plus, at once, FORGOTTEN rows in every memory table.

`forget` records (or reuses) an active rule and marks the matching rows FORGOTTEN in each
memory table in one commit per table, tagged `forget-<rule id>`; no other row changes.
Curation keeps matching rows FORGOTTEN while the rule is active. `unforget` deactivates
the rule; the next `curate` reconsiders those rows like any others.
"""
from __future__ import annotations

import logging
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
from sqlmodel import select as sql_select

from ..catalog import Dataset, ForgetRule, Image, IngestBatch, session_scope
from ..config import Settings
from ..errors import InputError
from ..workspace import Workspace
from .curate import write_states
from .lock import memory_lock
from .plan import RULE_COLUMNS
from .resolve import memory_embedder_ids
from .table import FORGOTTEN, MemoryTable

logger = logging.getLogger(__name__)

TAG_PREFIX = "forget-"
MAX_TARGET_CHARS = 512  # a dataset name, batch id or sha256 is far shorter; longer is a mistake
MAX_RULE_ID = 2 ** 63 - 1  # the catalog's integer ids are 64-bit


def _one_target(dataset: Optional[str], batch: Optional[str], image_sha: Optional[str]) -> tuple[str, str]:
    given = [(k, v) for k, v in (("dataset", dataset), ("batch", batch), ("image_sha", image_sha)) if v]
    if len(given) != 1:
        raise InputError("name exactly one of --dataset, --batch or --image-sha")
    kind, value = given[0]
    if len(value) > MAX_TARGET_CHARS:
        raise InputError(f"the --{kind.replace('_', '-')} value is {len(value):,} characters long; "
                         f"at most {MAX_TARGET_CHARS} are accepted")
    if not value.isprintable():
        raise InputError(f"the --{kind.replace('_', '-')} value {value[:60]!r} holds control characters")
    return kind, value


def rule_reason(rule_id: int, kind: str, value: str) -> str:
    """The state_reason of rows forgotten by a rule (the same text curation writes)."""
    return f"forget_rule:{rule_id}({kind}={value})"


def _matching(mt: MemoryTable, kind: str, value: str) -> pa.Table:
    col = RULE_COLUMNS[kind]
    rows = mt.table.search().select(["id", col, "state", "state_reason"]).limit(None).to_arrow()
    return rows.filter(pc.equal(rows.column(col), pa.scalar(value)))


PRODUCTION_NOTE = ("the forgotten rows stay in every published release, so the release behind `production` "
                   "keeps serving them until the next `knnclip publish` and `knnclip releases promote`")
_CATALOG_KEY = {"dataset": Dataset.name, "batch": IngestBatch.id, "image_sha": Image.sha256}


def catalog_knows(ws: Workspace, kind: str, value: str) -> bool:
    """Whether the catalog has the dataset name, ingest batch id or image sha256 `value`."""
    with session_scope(ws.catalog_url) as s:
        return s.exec(sql_select(_CATALOG_KEY[kind]).where(_CATALOG_KEY[kind] == value)).first() is not None


def forget(settings: Settings, ws: Workspace, *, dataset: Optional[str] = None, batch: Optional[str] = None,
           image_sha: Optional[str] = None, reason: str = "", lock_timeout_s: Optional[float] = None,
           allow_unknown: bool = False) -> dict:
    """Forget the rows of one dataset name, batch id or image sha256 in every memory table.

    Returns {rule_id, kind, value, reason, tables: {embedder_id: {matched, forgotten, lance_version,
    lance_tag}}, forgotten, note}. Raises InputError (not exactly one target; a target neither the
    catalog nor any memory knows, unless `allow_unknown`), BusyError (lock).
    """
    kind, value = _one_target(dataset, batch, image_sha)
    ws.ensure()
    timeout = settings.curate.lock_timeout_s if lock_timeout_s is None else lock_timeout_s
    with memory_lock(ws, timeout, what="forget"):
        tables_now = {eid: MemoryTable.open(ws.memory_uri, eid, create=False) for eid in memory_embedder_ids(ws)}
        hits = {eid: _matching(mt, kind, value) for eid, mt in tables_now.items()}
        if not allow_unknown and not any(h.num_rows for h in hits.values()) and not catalog_knows(ws, kind, value):
            flag = "--image-sha" if kind == "image_sha" else f"--{kind}"
            raise InputError(f"{flag} {value!r} is not in the catalog or any memory (a typo?); "
                             f"pass --allow-unknown to record a rule for it anyway")
        with session_scope(ws.catalog_url) as s:
            rule = s.exec(sql_select(ForgetRule).where(ForgetRule.kind == kind, ForgetRule.value == value,
                                                        ForgetRule.active == True)).first()  # noqa: E712
            if rule is None:
                rule = ForgetRule(kind=kind, value=value, reason=reason, active=True)
                s.add(rule)
                s.flush()
            elif reason and not rule.reason:
                rule.reason = reason
            rule_id, rule_text = rule.id, rule.reason
        tables, total = {}, 0
        for eid, mt in tables_now.items():
            hit = hits[eid]
            todo = [i for i, st in zip(hit.column("id").to_pylist(), hit.column("state").to_pylist()) if st != FORGOTTEN]
            entry = {"matched": hit.num_rows, "forgotten": len(todo), "lance_version": mt.table.version, "lance_tag": None}
            if todo:
                write_states(mt, todo, [FORGOTTEN] * len(todo), [rule_reason(rule_id, kind, value)] * len(todo))
                tag = f"{TAG_PREFIX}{rule_id}"
                if tag in mt.table.tags.list():
                    tag = f"{tag}-v{mt.table.version}"
                mt.table.tags.create(tag, mt.table.version)
                entry.update(lance_version=mt.table.version, lance_tag=tag)
            tables[eid] = entry
            total += len(todo)
    logger.info("forget rule %s (%s=%s): %d rows forgotten", rule_id, kind, value, total)
    return {"rule_id": rule_id, "kind": kind, "value": value, "reason": rule_text, "tables": tables,
            "forgotten": total, "note": PRODUCTION_NOTE}


def unforget(settings: Settings, ws: Workspace, *, dataset: Optional[str] = None, batch: Optional[str] = None,
             image_sha: Optional[str] = None, rule_id: Optional[int] = None) -> dict:
    """Deactivate the active forget rule(s) for a target (or by id). The table is unchanged;
    the next `curate` reconsiders the rows. Returns {deactivated: [ids], rows_to_reconsider}.
    Raises InputError when no active rule matches."""
    ws.ensure()
    with session_scope(ws.catalog_url) as s:
        q = sql_select(ForgetRule).where(ForgetRule.active == True)  # noqa: E712
        if rule_id is not None:
            if not 0 <= int(rule_id) <= MAX_RULE_ID:
                raise InputError(f"there is no forget rule {rule_id}: rule ids are whole numbers 1 to {MAX_RULE_ID}; "
                                 "`knnclip memory history` lists them")
            q = q.where(ForgetRule.id == int(rule_id))
        else:
            kind, value = _one_target(dataset, batch, image_sha)
            q = q.where(ForgetRule.kind == kind, ForgetRule.value == value)
        rules = list(s.exec(q))
        if not rules:
            raise InputError("no active forget rule matches; `knnclip memory history` lists them")
        for r in rules:
            r.active = False
        done = [(r.id, r.kind, r.value) for r in rules]
    reasons = {rule_reason(*d) for d in done}
    waiting = 0
    for eid in memory_embedder_ids(ws):
        mt = MemoryTable.open(ws.memory_uri, eid, create=False)
        waiting += sum(1 for r in mt.column("state_reason") if r in reasons)
    return {"deactivated": [d[0] for d in done], "rows_to_reconsider": waiting,
            "note": "rows come back at the next `knnclip curate`"}


def list_rules(ws: Workspace) -> list[dict]:
    """Every forget rule (active or not), oldest first."""
    with session_scope(ws.catalog_url) as s:
        return [{"id": r.id, "kind": r.kind, "value": r.value, "reason": r.reason, "active": r.active,
                 "created": r.created.isoformat()} for r in s.exec(sql_select(ForgetRule).order_by(ForgetRule.id))]
