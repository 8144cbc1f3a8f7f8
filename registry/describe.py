"""The markdown description of a model version, as people read it in the MLflow UI: what
changed since the previous version (classes and rows added/removed), vocabulary size,
vectors, index and recall@10, memory backbone and base model, source memory version and
tag, and quality (the gate's figures, filled in when a promotion evaluates the version).

`changes(manifest_a, manifest_b)` is also the logic of `knnclip releases diff`.
"""
from __future__ import annotations

import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from knnclip_core.classnames import display_name
from knnclip_core.hashing import sha256_file
from knnclip_core.index.snapshot import LABELS_FILE, MANIFEST_FILE

from . import store
from .eval_tags import EVAL_EXPERIMENT, TAG_LATEST_MIOU, TAG_LATEST_RUN
from .store import RegistryContext

logger = logging.getLogger(__name__)

MAX_CHARS = 4800  # MLflow keeps at most 5000 characters of a version's description
MAX_ITEMS = 8  # classes listed per kind of change before "and N more"
QUALITY_HEADING = "### Quality"
THRESHOLD_HEADING = "### Confidence threshold"
GATE_TAG = re.compile(r"^knnclip\.gate\.(?P<alias>[^.]+)\.(?P<name>.+)$")
GATE_FIGURES = (("segment_accuracy", "segment accuracy"), ("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"))


def changes(ma: dict, mb: dict) -> dict:
    """What changed from manifest `ma` to `mb`: classes added/removed ({name: vectors}),
    per-class counts changed, embedder, index and totals (JSON-ready)."""
    ca, cb = ma.get("class_counts", {}), mb.get("class_counts", {})
    changed = {name: {"a": ca[name], "b": cb[name], "delta": cb[name] - ca[name]}
               for name in sorted(set(ca) & set(cb)) if ca[name] != cb[name]}
    return {"added": {name: cb[name] for name in sorted(set(cb) - set(ca))},
            "removed": {name: ca[name] for name in sorted(set(ca) - set(cb))},
            "changed": changed,
            "unchanged_classes": len(set(ca) & set(cb)) - len(changed),
            "embedder": {"a": ma["embedder_id"], "b": mb["embedder_id"], "changed": ma["embedder_id"] != mb["embedder_id"]},
            "factory": {"a": ma["factory"], "b": mb["factory"]},
            "vectors": {"a": ma["vectors"], "b": mb["vectors"], "delta": mb["vectors"] - ma["vectors"]},
            "classes": {"a": ma["classes"], "b": mb["classes"], "delta": mb["classes"] - ma["classes"]},
            "lineage": {"a": ma.get("lineage", {}), "b": mb.get("lineage", {})}}


def row_changes(ids_a: Sequence[str], ids_b: Sequence[str]) -> dict:
    """{'added', 'removed', 'kept'}: segment rows only in b, only in a, in both."""
    a, b = set(map(str, ids_a)), set(map(str, ids_b))
    return {"added": len(b - a), "removed": len(a - b), "kept": len(a & b)}


def previous_parts(ctx: RegistryContext, version: int) -> tuple[dict, list[str]]:
    """(manifest, segment ids) of published `version`, reading only its manifest and labels
    (checked against the recorded manifest sha256 and the manifest). Raises
    VerificationError on a mismatch, MlflowException/OSError when they cannot be read."""
    import mlflow

    from knnclip_core.errors import VerificationError

    mv = ctx.model_version(version)
    with tempfile.TemporaryDirectory(prefix="previous-") as tmp:
        got = {}
        for name in (MANIFEST_FILE, LABELS_FILE):
            got[name] = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{store.snapshot_uri(mv)}/{name}", dst_path=tmp,
                                                                 tracking_uri=ctx.tracking_uri))
        expected = (mv.tags or {}).get(store.TAG_MANIFEST_SHA)
        if expected and sha256_file(got[MANIFEST_FILE]) != expected:
            raise VerificationError(f"{MANIFEST_FILE} of release {version} does not match its recorded checksum")
        manifest = json.loads(got[MANIFEST_FILE].read_text())
        if sha256_file(got[LABELS_FILE]) != manifest["files"][LABELS_FILE]["sha256"]:
            raise VerificationError(f"{LABELS_FILE} of release {version} does not match its manifest")
        ids = segment_ids_of(got[LABELS_FILE])
    return manifest, ids


def segment_ids_of(labels: Path) -> list[str]:
    """The segment id of each row of a snapshot's labels file."""
    import pyarrow.parquet as pq

    return pq.read_table(labels, columns=["segment_id"]).column("segment_id").to_pylist()


def _names(counts: dict, limit: int = MAX_ITEMS) -> str:
    items = [f"{display_name(n)} ({c})" for n, c in list(counts.items())[:limit]]
    more = len(counts) - limit
    return ", ".join(items) + (f", and {more} more" if more > 0 else "")


def change_lines(previous: Optional[int], diff: Optional[dict], rows: Optional[dict],
                 error: Optional[str] = None) -> list[str]:
    """Markdown lines of the 'Changes' section."""
    if previous is None:
        return ["### Changes", "- first version of this model"]
    out = [f"### Changes since version {previous}"]
    if diff is None:
        return out + [f"- not known: version {previous} could not be read ({error})"]
    v, c = diff["vectors"], diff["classes"]
    out.append(f"- vectors {v['a']:,} → {v['b']:,} ({v['delta']:+,}); classes {c['a']} → {c['b']} ({c['delta']:+})")
    if rows is not None:
        out.append(f"- rows: {rows['added']:,} added, {rows['removed']:,} removed, {rows['kept']:,} kept")
    if diff["added"]:
        out.append(f"- classes added ({len(diff['added'])}): {_names(diff['added'])}")
    if diff["removed"]:
        out.append(f"- classes removed ({len(diff['removed'])}): {_names(diff['removed'])}")
    if diff["changed"]:
        biggest = dict(sorted(diff["changed"].items(), key=lambda kv: -abs(kv[1]["delta"])))
        shown = [f"{display_name(n)} {d['a']}→{d['b']}" for n, d in list(biggest.items())[:MAX_ITEMS]]
        more = len(biggest) - MAX_ITEMS
        out.append(f"- vectors per class changed for {len(biggest)}: {', '.join(shown)}"
                   + (f", and {more} more" if more > 0 else ""))
    if not (diff["added"] or diff["removed"] or diff["changed"]):
        out.append("- same classes with the same vector counts")
    if diff["embedder"]["changed"]:
        out.append(f"- embedder changed: `{diff['embedder']['a']}` → `{diff['embedder']['b']}`")
    if diff["factory"]["a"] != diff["factory"]["b"]:
        out.append(f"- index changed: `{diff['factory']['a']}` → `{diff['factory']['b']}`")
    return out


def _base_model(record: dict) -> str:
    base = (record.get("config") or {}).get("worker.base_model") or {}
    if not base:
        return "not recorded"
    if base.get("kind", "none") == "none":
        return "none (retrieval only), as configured for serving"
    return f"{base['kind']} (backbone {base.get('backbone') or 'the memory backbone'}), as configured for serving"


def quality_lines(tags: dict) -> list[str]:
    """Markdown lines of the 'Quality' section from the gate's version tags."""
    by_alias: dict[str, dict] = {}
    for key, value in tags.items():
        m = GATE_TAG.match(key)
        if m:
            by_alias.setdefault(m["alias"], {})[m["name"]] = value
    out = [QUALITY_HEADING]
    if _is_number(tags.get(TAG_LATEST_MIOU)):
        out.append(f"- latest evaluation: mIoU {float(tags[TAG_LATEST_MIOU]):.4f} (run `{tags.get(TAG_LATEST_RUN)}` "
                   f"in experiment `{EVAL_EXPERIMENT}`)")
    for alias, fig in sorted(by_alias.items()):
        parts = [f"{label} {float(fig[name]):.4f}" for name, label in GATE_FIGURES if _is_number(fig.get(name))]
        if not parts:
            continue
        images = f" on {fig['images']} images" if fig.get("images") else ""
        line = f"- quality gate for `{alias}` (as {fig.get('role', '?')}): {', '.join(parts)}{images}"
        try:
            decision = json.loads(fig.get("decision") or "null")
        except ValueError:
            decision = None
        if isinstance(decision, dict) and decision.get("delta") is not None:
            line += f"; {decision['delta']:+.4f} vs version {decision.get('vs')}" + (" (forced)" if decision.get("force") else "")
        out.append(line)
    if len(out) == 1:
        out.append("- not evaluated yet: `knnclip eval` and the quality gate record figures here")
    return out


def _is_number(value) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def threshold_lines(cal: Optional[dict]) -> list[str]:
    """Markdown lines of the 'Confidence threshold' section: the release's calibrated T, the
    split it was measured on and its curve every 0.1 (held-out known accuracy / unknown rate)."""
    from knnclip_core.segment.calibrate import threshold_line

    out = [THRESHOLD_HEADING, f"- {threshold_line(cal)}"]
    points = [p for p in (cal or {}).get("curve") or [] if round(p[0] * 10, 6) == int(round(p[0] * 10, 6))]
    if points:
        out.append("- curve (T: known accuracy / unknown rate): "
                   + ", ".join(f"{t:.1f}: {a:.3f}/{u:.3f}" for t, a, u in points))
    out.append("- a worker uses this T unless `worker.confidence_threshold` overrides it")
    return out


def describe(manifest: dict, record: dict, change: list[str], quality: Optional[list[str]] = None) -> str:
    """The markdown description of a release (at most MAX_CHARS characters)."""
    mem, bb = record.get("memory") or {}, record.get("backbone") or {}
    sources = record.get("sources") or []
    datasets: dict[str, int] = {}
    for s in sources:
        datasets[s.get("dataset") or "?"] = datasets.get(s.get("dataset") or "?", 0) + (s.get("rows") or 0)
    head = (f"**{manifest['classes']:,} classes, {manifest['vectors']:,} vectors**, index `{manifest['factory']}` "
            f"(recall@10 {manifest['recall_at_10']:.4f} vs exact search)")
    memory = ["### Memory",
              f"- backbone `{bb.get('name') or '?'}`" + (f", weights sha256 `{bb['weights_sha256'][:12]}…`"
                                                        if bb.get("weights_sha256") else "")
              + f"; embedder `{manifest['embedder_id']}`",
              f"- base model: {_base_model(record)}",
              f"- source memory: table `{mem.get('table') or '?'}`, Lance version {mem.get('lance_version')}, "
              f"tag `{mem.get('lance_tag') or '-'}`"]
    if sources:
        memory.append(f"- from {len(datasets)} dataset(s), {len(sources)} batch(es): "
                      + ", ".join(f"{d} ({n:,} rows)" if n else d for d, n in list(datasets.items())[:MAX_ITEMS]))
    tail = ["", "Provenance: `provenance.json` and the Datasets of this version's run."]
    text = "\n".join([head, "", *change, "", *memory, "", *threshold_lines(manifest.get("calibration")), "",
                      *(quality or quality_lines({})), *tail])
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS - 40].rsplit("\n", 1)[0] + "\n\n… (cut; see provenance.json)"
    return text


def refresh_quality(ctx: RegistryContext, version: int) -> None:
    """Rewrite the Quality section of `version`'s description from its evaluation and gate
    tags (a description without one, written by an older knnclip, gets the section appended).
    Best effort: a registry that refuses is logged, never raised (the figures are in the tags)."""
    from mlflow.exceptions import MlflowException

    from knnclip_core.errors import KnnclipError

    try:
        _refresh_quality(ctx, version)
    except (MlflowException, KnnclipError) as exc:
        logger.warning("the description of version %s keeps its old quality section: %s", version, exc)


def _refresh_quality(ctx: RegistryContext, version: int) -> None:
    mv = ctx.model_version(version)
    text = mv.description or ""
    quality = "\n".join(quality_lines(mv.tags or {}))
    if QUALITY_HEADING in text:
        before, _, after = text.partition(QUALITY_HEADING)
        rest = after.split("\n\n", 1)[1] if "\n\n" in after else ""
        text = before + quality + ("\n\n" + rest if rest else "")
    else:
        text = (text.rstrip() + "\n\n" + quality).strip()
    ctx.client.update_model_version(ctx.model_name, str(version), description=text[:MAX_CHARS])
