"""`curate`: decide every row's state, write the states in one commit, tag the version.

A run, under the workspace memory lock (knnclip_core.memory.lock):
read all rows of the embedder's table -> `plan_curation` (pure: forget rules, label
conflicts, near-duplicates, budget; see plan.py for the stated rules) -> one
`merge_insert` of (id, state, state_reason) for the rows whose state changed -> compaction
of small fragments (no cleanup of old versions, which tags still point at) -> tag
`curation-<run id>` on the resulting version -> a catalog CurationRun with the params,
the report, the version and the tag. A failure before the write leaves the table as it
was; the write itself is a single LanceDB commit, so the table is never half-written.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Optional

import pyarrow as pa
import pyarrow.compute as pc
from sqlmodel import select as sql_select

from ..catalog import CurationRun, ForgetRule, session_scope
from ..catalog.models import utcnow
from ..config import Settings
from ..errors import InputError
from ..overrides import apply_budget, with_overrides
from ..workspace import Workspace
from .budget import STRATEGIES, vectors_for_budget
from .lock import memory_lock
from .plan import CurationParams, Rule, plan_curation
from .resolve import resolve_embedder_id
from .table import MemoryTable

logger = logging.getLogger(__name__)

FALLBACK_DEDUP_THRESHOLD = 0.98

TAG_PREFIX = "curation-"
KEEP_VERSIONS = timedelta(days=36500)  # compaction never deletes versions: tags point at them
STATE_SCHEMA = pa.schema([pa.field("id", pa.string(), nullable=False), pa.field("state", pa.string()),
                          pa.field("state_reason", pa.string())])


def active_rules(ws: Workspace) -> list[Rule]:
    """The active forget rules of the catalog."""
    with session_scope(ws.catalog_url) as s:
        return [Rule(r.id, r.kind, r.value) for r in s.exec(sql_select(ForgetRule).where(ForgetRule.active == True))]  # noqa: E712


def write_states(mt: MemoryTable, ids: list[str], states: list[str], reasons: list[str]) -> int:
    """Update (state, state_reason) of existing rows by id in ONE commit; returns rows written.

    Rows that disappeared meanwhile are not re-inserted (update only)."""
    if not ids:
        return 0
    upd = pa.table({"id": ids, "state": states, "state_reason": reasons}, schema=STATE_SCHEMA)
    mt.table.merge_insert("id").when_matched_update_all().execute(upd)
    return len(ids)


def compact(mt: MemoryTable) -> None:
    """Merge small fragments (a new version when there is something to merge); never fails the run."""
    try:
        frags = mt.table.stats()["fragment_stats"]
        if frags["num_small_fragments"] > 1 or frags["num_fragments"] > 1:
            mt.table.optimize(cleanup_older_than=KEEP_VERSIONS)
    except Exception as exc:  # compaction is housekeeping: the states are already committed
        logger.warning("compaction of %s skipped: %s", mt.name, exc)


def default_dedup_threshold(settings: Settings, backbone: Optional[str]) -> float:
    """settings.curate.dedup_threshold, else the backbone's own (configs/backbones.yaml), else
    FALLBACK_DEDUP_THRESHOLD when `backbone` is an embedder id rather than a configured name.
    Raises ValueError when configs/backbones.yaml cannot be read (never a silent fallback)."""
    if settings.curate.dedup_threshold is not None:
        return float(settings.curate.dedup_threshold)
    from ..embedders.backbones import UnknownBackboneError, get_spec

    try:
        spec_value = get_spec(backbone or settings.embed.backbone).dedup_threshold
    except UnknownBackboneError:  # an embedder id: no backbone default
        spec_value = None
    return float(spec_value) if spec_value is not None else FALLBACK_DEDUP_THRESHOLD


def _params(settings: Settings, dim: int, dedup_method: Optional[str], dedup_nprobe: Optional[int],
            backbone: Optional[str] = None) -> tuple[CurationParams, dict]:
    """The plan's parameters from `settings.curate` alone (overrides were applied before)."""
    cfg = settings.curate
    if cfg.strategy not in STRATEGIES:
        raise InputError(f"unknown curation strategy {cfg.strategy!r} (known: {', '.join(STRATEGIES.names())})")
    try:
        budget = vectors_for_budget(dim, cfg.budget_vectors, cfg.budget_mb)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    threshold = default_dedup_threshold(settings, backbone)
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"the dedup threshold must be in (0, 1], not {threshold}")
    params = CurationParams(
        dedup_threshold=threshold, strategy=cfg.strategy, budget_vectors=budget, class_floor=int(cfg.class_floor),
        class_ceiling=None if cfg.class_ceiling is None else int(cfg.class_ceiling), seed=int(cfg.seed),
        dedup_method=dedup_method or "auto", dedup_nprobe=dedup_nprobe or 4)
    recorded = {**asdict(params), "budget_mb": cfg.budget_mb, "budget_vectors_requested": cfg.budget_vectors}
    return params, recorded


def curation_settings(settings: Settings, *, budget_vectors: Optional[int] = None, budget_mb: Optional[float] = None,
                      dedup_threshold: Optional[float] = None, strategy: Optional[str] = None,
                      class_floor: Optional[int] = None, class_ceiling: Optional[int] = None,
                      seed: Optional[int] = None, lock_timeout_s: Optional[float] = None) -> Settings:
    """`settings` with the curation options asked for (None: the configured value); a budget in
    one unit replaces the configured budget in both. Used once, at the edge (CLI, flow).
    Raises InputError naming the option a field refuses."""
    try:
        settings = apply_budget(settings, budget_vectors, budget_mb)
        return with_overrides(settings, curate=dict(dedup_threshold=dedup_threshold, strategy=strategy,
                                                    class_floor=class_floor, class_ceiling=class_ceiling, seed=seed,
                                                    lock_timeout_s=lock_timeout_s))
    except ValueError as exc:  # pydantic's ValidationError: a value its field refuses
        raise InputError(f"curation options refused: {' '.join(str(exc).split())[:300]}") from None


def curate(settings: Settings, ws: Workspace, backbone: Optional[str] = None, *,
           dedup_method: Optional[str] = None, dedup_nprobe: Optional[int] = None, **options) -> dict:
    """Curate the memory of `backbone` (a backbone name, an embedder id, or None for the only
    memory) as `settings.curate` says. `options` (budget_vectors, budget_mb, dedup_threshold,
    strategy, class_floor, class_ceiling, seed, lock_timeout_s) are applied to a settings copy
    first (see `curation_settings`). Returns the report (dict).

    Raises InputError (bad parameters, no or ambiguous memory), BusyError (another run holds
    the lock past the timeout), EmbedderMismatchError (the table holds another embedder).
    """
    if options:
        settings = curation_settings(settings, **options)
    t0 = time.perf_counter()
    ws.ensure()
    embedder_id = resolve_embedder_id(ws, backbone)
    timeout = settings.curate.lock_timeout_s
    with memory_lock(ws, timeout, what="curation"):
        mt = MemoryTable.open(ws.memory_uri, embedder_id, create=False)
        params, recorded = _params(settings, mt.dim, dedup_method, dedup_nprobe, backbone)
        with session_scope(ws.catalog_url) as s:
            run = CurationRun(embedder_id=embedder_id, table_name=mt.name, params_json=json.dumps(recorded))
            s.add(run)
            s.flush()
            run_id = run.id
        try:
            report = _run(ws, mt, params, run_id)
        except BaseException as exc:
            with session_scope(ws.catalog_url) as s:
                row = s.get(CurationRun, run_id)
                row.status, row.finished = "failed", utcnow()
                row.report_json = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            raise
        report.update({"embedder_id": embedder_id, "table": mt.name, "params": recorded,
                       "seconds": round(time.perf_counter() - t0, 3)})
        with session_scope(ws.catalog_url) as s:
            row = s.get(CurationRun, run_id)
            row.status, row.finished = "done", utcnow()
            row.lance_version, row.lance_tag = report["lance_version"], report["lance_tag"]
            row.report_json = json.dumps(report, default=str)
    ws.reports_dir.mkdir(parents=True, exist_ok=True)
    (ws.reports_dir / f"curation-{run_id}.json").write_text(json.dumps(report, indent=1, default=str))
    logger.info("curation %s of %s: %s", run_id, embedder_id, report["counts"])
    return report


def _run(ws: Workspace, mt: MemoryTable, params: CurationParams, run_id: int) -> dict:
    cols = ["id", "vector", "class_name", "dataset", "batch_id", "image_sha256", "ingested_at", "state",
            "state_reason"]
    rows = mt.table.to_arrow().select(cols)
    rows = rows.take(pc.sort_indices(rows, sort_keys=[("id", "ascending")]))
    read_version = mt.table.version
    plan = plan_curation(rows, active_rules(ws), params)
    old_states, old_reasons = rows.column("state").to_pylist(), rows.column("state_reason").to_pylist()
    ids = rows.column("id").to_pylist()
    changed = [i for i in range(len(ids)) if (old_states[i], old_reasons[i]) != (plan.states[i], plan.reasons[i])]
    write_states(mt, [ids[i] for i in changed], [str(plan.states[i]) for i in changed],
                 [plan.reasons[i] for i in changed])
    compact(mt)
    tag = f"{TAG_PREFIX}{run_id}"
    version = mt.table.version
    mt.table.tags.create(tag, version)
    return {"run_id": run_id, "read_version": read_version, "lance_version": version, "lance_tag": tag,
            "changed_rows": len(changed), **plan.report}


def curated_budget_mb(ws: Workspace, embedder_id: str, lance_version: int) -> Optional[float]:
    """The MB budget (from a flag or the config) of the newest finished curation of `embedder_id`
    at or before Lance version `lance_version`: what a publish of that version must fit. None
    when that curation had no MB budget or no curation is recorded."""
    with session_scope(ws.catalog_url) as s:
        runs = s.exec(sql_select(CurationRun).where(CurationRun.embedder_id == embedder_id,
                                                    CurationRun.status == "done",
                                                    CurationRun.lance_version <= int(lance_version))
                      .order_by(CurationRun.id.desc()).limit(1)).all()
    if not runs:
        return None
    value = json.loads(runs[0].params_json or "{}").get("budget_mb")
    return float(value) if value is not None else None
