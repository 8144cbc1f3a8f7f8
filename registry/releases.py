"""Look at and move releases: list, show, diff, promote (through the quality gate), rollback."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Optional

from knnclip_core.index.snapshot import MANIFEST_FILE
from knnclip_core.errors import VerificationError

from . import store
from .eval_runs import by_eval_set, eval_runs, latest_quality, quality_history
from .aliases import check_aliases, move_alias, read_history, rollback_alias
from .describe import changes, row_changes
from .gate import Evaluator, GateRefusedError, default_evaluator, run_gate
from .load import parse_ref, resolve_ref
from .provenance import read_provenance, release_facts
from .store import RegistryContext, check_alias

logger = logging.getLogger(__name__)

GATED_ALIASES = ("production",)  # with no gate evaluation, these aliases need --force


def _created(mv) -> str:
    return dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, dt.timezone.utc).isoformat(timespec="seconds")


def _summary(mv, aliases_by_version: dict[int, list[str]], facts: dict) -> dict:
    version = int(mv.version)
    f = facts[version]  # registry.provenance.release_facts: the run's figures, old tags as a fallback
    return {"version": version, "aliases": sorted(aliases_by_version.get(version, [])),
            "classes": f["classes"], "vectors": f["vectors"],
            "created": _created(mv), "embedder_id": f["embedder_id"],
            "backbone": f["backbone"], "factory": f["factory"],
            "recall_at_10": f["recall_at_10"], "run_id": mv.run_id, "status": mv.status}


def _by_version(ctx: RegistryContext) -> dict[int, list[str]]:
    check_aliases(ctx)  # records (and warns about) alias moves made outside knnclip
    out: dict[int, list[str]] = {}
    for alias, version in ctx.aliases().items():
        out.setdefault(version, []).append(alias)
    return out


def list_releases(ctx: RegistryContext) -> list[dict]:
    """All versions of the model, oldest first: version, aliases, classes, vectors, created, ...,
    'quality': its newest evaluation on the common evaluation set (the one the most versions were
    evaluated on, registry.eval_runs.by_eval_set; None when not evaluated on it), so that the
    figures of a list compare; 'quality_latest': its newest evaluation on any set; 'quality_sets':
    {eval set: its newest run on that set}."""
    versions = ctx.client.search_model_versions(f"name = '{ctx.model_name}'")
    by_version = _by_version(ctx)
    runs = eval_runs(ctx)
    sets = by_eval_set(runs)
    common = sets[0]["versions"] if sets else {}
    latest = latest_quality(ctx, runs)
    facts = release_facts(ctx, versions)
    rows = []
    for mv in versions:
        v = int(mv.version)
        rows.append(dict(_summary(mv, by_version, facts), quality=common.get(v), quality_latest=latest.get(v),
                         quality_sets={g["eval_set"]: g["versions"][v] for g in sets if v in g["versions"]}))
    return sorted(rows, key=lambda r: r["version"])


def read_manifest(ctx: RegistryContext, version: int) -> dict:
    """manifest.json of a release, only after the release verifies: the manifest against the
    sha256 recorded on the version, every file against the manifest (see load.load_release;
    the snapshot is downloaded into the workspace cache if needed). Raises VerificationError."""
    return _verified_snapshot(ctx, version).manifest


def _verified_snapshot(ctx: RegistryContext, version: int):
    from .load import load_release

    tags = ctx.model_version(version).tags or {}
    if not tags.get(store.TAG_MANIFEST_SHA):
        raise VerificationError(f"release {version} has no recorded {MANIFEST_FILE} checksum, so it cannot be verified")
    return load_release(version, ctx=ctx).snapshot


def show_release(ctx: RegistryContext, ref: str | int) -> dict:
    """Summary, tags, manifest (without per-file checksums' noise kept), alias history, and quality:
    'quality' (newest evaluation run or None), 'eval_runs' (its 10 newest) and 'quality_history'
    (registry.eval_runs.quality_history, across versions) of one release."""
    version = resolve_ref(ref, ctx=ctx)
    mv = ctx.model_version(version)
    out = _summary(mv, _by_version(ctx), release_facts(ctx, [mv]))
    out["tags"] = {k: v for k, v in (mv.tags or {}).items()}
    out["source"] = mv.source
    out["description"] = mv.description
    out["provenance"] = read_provenance(ctx, version)
    out["manifest"] = read_manifest(ctx, version)
    out["confidence_threshold"] = threshold_in_force(ctx.settings, out["manifest"])
    out["alias_history"] = {a: read_history(ctx, a) for a in out["aliases"]}
    runs = eval_runs(ctx)
    out["quality"] = latest_quality(ctx, runs).get(version)
    out["eval_runs"] = [r for r in runs if r["version"] == version][:10]
    out["quality_history"] = quality_history(ctx, runs)
    return out


def threshold_in_force(settings, manifest: dict) -> dict:
    """{'value', 'source', 'calibration'}: the T a worker with `settings` uses on this release
    (knnclip_core.segment.calibrate.resolve_threshold) and the release's calibration record."""
    from knnclip_core.segment import SegmentParams
    from knnclip_core.segment.calibrate import resolve_threshold

    value, source = resolve_threshold(SegmentParams.from_settings(settings), manifest)
    return {"value": value, "source": source, "calibration": manifest.get("calibration")}


def diff_releases(ctx: RegistryContext, a: str | int, b: str | int) -> dict:
    """What changed from release a to b: classes added/removed, per-class vector counts changed,
    embedder, index, totals, segment rows added/removed, and 'corrections': the rows and classes
    that came from labelling corrections (registry.corrections). Returns a JSON-ready dict."""
    va, vb = resolve_ref(a, ctx=ctx), resolve_ref(b, ctx=ctx)
    from .corrections import correction_changes

    sa, sb = _verified_snapshot(ctx, va), _verified_snapshot(ctx, vb)
    diff = changes(sa.manifest, sb.manifest)
    corr = correction_changes(ctx.settings, sb.manifest, sa.segment_ids, sb.segment_ids)
    corr["new_classes"] = sorted(n for n in diff["added"] if n in corr["classes"])
    return {"a": va, "b": vb, **diff, "rows": row_changes(sa.segment_ids, sb.segment_ids), "corrections": corr}


def promote(ctx: RegistryContext, ref: str | int, alias: str = "production", force: bool = False,
            evaluator: Optional[Evaluator] = "default", tolerance: Optional[float] = None) -> dict:
    """Point `alias` at release `ref` after the quality gate (see registry.gate).

    `evaluator` 'default' builds one from settings; when no gate set is configured, a promotion to
    an alias of GATED_ALIASES (production) is refused (GateRefusedError saying how to configure
    one) unless `force`. An explicit `evaluator=None` skips the gate (the caller's decision).
    The snapshot is verified first (as `read_manifest`); `force` does not skip that.
    Returns {'alias', 'version', 'previous', 'gate'}; raises GateRefusedError on a regression
    beyond the tolerance unless `force`, ReleaseNotFoundError for an unknown release,
    VerificationError for a release whose snapshot fails its checksums (the alias does not move)."""
    check_alias(alias)
    check_aliases(ctx, [alias])  # a move made outside knnclip is recorded before anything else
    version = resolve_ref(ref, ctx=ctx)
    unconfigured = evaluator == "default" and default_evaluator(ctx.settings) is None
    if evaluator == "default":
        evaluator = default_evaluator(ctx.settings)
    tolerance = ctx.settings.publish.gate_tolerance if tolerance is None else tolerance
    if ctx.aliases().get(alias) == version:
        return {"alias": alias, "version": version, "previous": version, "gate": {"status": "unchanged"},
                "changed": False}
    if unconfigured and alias in GATED_ALIASES:
        if not force:
            raise GateRefusedError(no_gate_refusal(version, alias))
        evaluator = None
        force_note = f"forced: {alias!r} without a gate evaluation (no publish.gate_eval_path or publish.gate_tasks)"
    else:
        force_note = None
    try:
        read_manifest(ctx, version)
    except VerificationError as exc:
        holder = ctx.aliases().get(alias)
        raise VerificationError(f"promotion refused: release {version} fails verification ({str(exc).rstrip('.')}), "
                                f"so {alias!r} stays on {'no release' if holder is None else f'version {holder}'}"
                                ) from exc
    gate = run_gate(ctx, version, alias, evaluator, tolerance, force=force)
    if force_note:
        gate = {**gate, "status": "forced", "reason": force_note}
    moved = move_alias(ctx, alias, version, action="promote-forced" if gate["status"] == "forced" else "promote",
                       note=gate.get("reason"))
    return {**moved, "gate": gate, "changed": True}


def no_gate_refusal(version: int, alias: str) -> str:
    """The one sentence refusing `alias` to a release with no gate evaluation, saying how to configure one."""
    return (f"promotion refused: release {version} has no quality-gate evaluation, so it cannot become {alias!r}; "
            f"configure a gate set (publish.gate_eval_path: a labelled dataset, e.g. "
            f"KNNCLIP_PUBLISH__GATE_EVAL_PATH=/data/holdout, or publish.gate_tasks: a tasks YAML) "
            f"or pass --force to promote without one")


def rollback(ctx: RegistryContext, alias: str = "production", expect: Optional[tuple[int, int]] = None) -> dict:
    """Give `alias` back to the version that held it before (see aliases.plan_rollback for
    `expect`). Returns {'alias', 'version', 'previous'}."""
    return rollback_alias(ctx, alias, expect)


__all__ = ["diff_releases", "list_releases", "parse_ref", "promote", "read_manifest", "rollback", "show_release"]
