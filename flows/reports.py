"""What a pipeline run reports: one stage line per stage (logs and terminal), the markdown
summary and the per-class table (Prefect artifacts). Pure functions of the stage results."""
from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from knnclip_core.redact import redact_url

STATE_COLUMNS = ("rows", "kept", "duplicate", "conflict", "over_budget", "forgotten")


def _n(count, word: str, plural: Optional[str] = None) -> str:
    """'1 conflict', '4 conflicts', '1,200 images'."""
    count = int(count or 0)
    return f"{count:,} {word if count == 1 else (plural or word + 's')}"


def _reasons(reasons: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "none"


def _size(n_bytes) -> str:
    n = float(n_bytes or 0)
    return f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def budget_text(budget: Optional[dict], params: Optional[dict] = None) -> str:
    """The curation budget in words, e.g. 'at most 2,000 vectors (1 MB requested; balanced,
    class floor 1, no class ceiling); kept 0.41 MB at 512 B/vector', or 'none (balanced, ...)'."""
    budget, params = budget or {}, params or {}
    if not budget:
        return "not recorded"
    vectors = budget.get("vectors")
    ceiling = budget.get("class_ceiling")
    rules = [str(budget.get("strategy") or "default strategy"), f"class floor {budget.get('class_floor', 0)}",
             "no class ceiling" if ceiling is None else f"class ceiling {ceiling}"]
    if params.get("budget_mb") is not None:
        rules[0] = f"{params['budget_mb']:g} MB requested; {rules[0]}"
    text = (f"at most {vectors:,} vectors" if vectors is not None else "none") + f" ({', '.join(rules)})"
    if budget.get("bytes_per_vector"):
        text += f"; kept {_size(budget.get('kept_bytes'))} at {budget['bytes_per_vector']:,} B/vector"
    return text


def ingest_line(r: dict) -> str:
    """'ingest: 48 images, 312 segments (300 new), 2 quarantined (3.1 s) from <source>'."""
    line = (f"ingest: {_n(r.get('images'), 'image')}, {_n(r.get('segments'), 'segment')} "
            f"({r.get('new_segments', 0):,} new), {r.get('quarantined', 0):,} quarantined")
    if r.get("reasons"):
        line += f" [{_reasons(r['reasons'])}]"
    line += f" ({r.get('seconds', 0):.1f} s) from {r.get('source')}"
    return line + (" (already ingested: cached summary)" if r.get("cached") else "")


def embed_line(e: dict, prefix: str = "embed") -> str:
    """'embed: 312 vectors (classic-v2 on cpu, 11.2 s), 40 already in the memory'."""
    line = (f"{prefix}: {_n(e.get('embedded'), 'vector')} ({e.get('backbone')} on {e.get('device')}, "
            f"{e.get('seconds', 0):.1f} s), {e.get('skipped_existing', 0):,} already in the memory")
    if e.get("failed_images"):
        line += f", {_n(e['failed_images'], 'image')} unreadable"
    return line


def curate_line(c: dict) -> str:
    """'curate: kept 290 of 312, 4 duplicates, 1 conflict, 0 over budget, 0 forgotten; budget ...'."""
    counts = c.get("counts") or {}
    return (f"curate: kept {counts.get('kept', 0):,} of {c.get('rows', 0):,}, "
            f"{_n(counts.get('duplicate'), 'duplicate')}, {_n(counts.get('conflict'), 'conflict')}, "
            f"{counts.get('over_budget', 0):,} over budget, {counts.get('forgotten', 0):,} forgotten; "
            f"budget {budget_text(c.get('budget'), c.get('params'))} ({c.get('seconds', 0):.1f} s)")


def publish_line(rel: dict) -> str:
    """'publish: version 7 (IVF64,Flat, recall@10 0.99, 290 vectors, 5 classes) -> staging'."""
    line = (f"publish: version {rel.get('version')} ({rel.get('factory')}, recall@10 {_num(rel.get('recall_at_10'))}, "
            f"{_n(rel.get('vectors'), 'vector')}, {_n(rel.get('classes'), 'class', 'classes')})")
    line += f" -> {rel['alias']}" if rel.get("alias") else " (no alias)"
    return line + (" (unchanged memory: existing release kept)" if rel.get("reused") else "")


def _num(v) -> str:
    try:
        return f"{float(v):.3f}"
    except (TypeError, ValueError):
        return str(v)


def promotion_text(p: Optional[dict]) -> str:
    """The promotion result in words: promoted (and the gate's verdict), refused (and why), or not asked."""
    if not p or p.get("status") == "not asked":
        return "not asked (`knnclip run --promote ALIAS` promotes through the quality gate)"
    if p["status"] == "refused":
        return f"refused: version {p.get('version')} was not promoted to {p.get('alias')} ({p.get('reason')})"
    gate = p.get("gate") or {}
    if gate.get("status") == "unchanged":
        return f"{p.get('alias')} already pointed at version {p.get('version')}"
    verdict = gate.get("reason") or f"quality gate {gate.get('status')}"
    was = "no version" if p.get("previous") is None else f"version {p['previous']}"
    return f"promoted version {p.get('version')} to {p.get('alias')} (it held {was}; {verdict})"


def promote_line(p: Optional[dict]) -> str:
    return f"promote: {promotion_text(p)}"


def redact_uri(uri: str) -> str:
    """`uri` without a password (artifacts and logs are readable by everyone on the server)."""
    return redact_url(uri)


def mlflow_links(release: dict) -> list[str]:
    """Markdown lines naming the MLflow run and model version of `release`: links when the
    tracking server is HTTP(S), else the tracking URI and ids to open with `mlflow ui`."""
    uri, run_id, version = redact_uri(release.get("tracking_uri") or ""), release.get("run_id"), release.get("version")
    name = release.get("model_name")
    if uri.startswith(("http://", "https://")):
        base = uri.rstrip("/")
        run = f"[{run_id}]({base}/#/experiments/{release.get('experiment_id')}/runs/{run_id})"
        model = f"[{name} version {version}]({base}/#/models/{quote(str(name))}/versions/{version})"
        return [f"- MLflow run: {run} on {base}", f"- model version: {model} (`{release.get('uri')}`)"]
    where = f" in experiment {release['experiment_id']}" if release.get("experiment_id") else ""
    lines = [f"- MLflow run: `{run_id}`{where}, tracking URI `{uri or 'unknown'}`",
             f"- model version: `{release.get('uri')}` ({name} version {version})"]
    if uri:
        lines.append(f"- open them with `mlflow ui --backend-store-uri {uri}`")
    return lines


def pipeline_markdown(ingests: list[dict], embed: dict, curation: dict, release: Optional[dict],
                      diff: Optional[dict], promotion: Optional[dict] = None) -> str:
    """One markdown summary of a pipeline run."""
    lines = ["# knnclip curation run", "", "## Ingest", "",
             "| source | batch | images | segments | new | quarantined | reasons |", "|---|---|---|---|---|---|---|"]
    for r in ingests:
        lines.append(f"| {r['source']} | {r['batch_id']} | {r['images']} | {r['segments']} | {r['new_segments']} | "
                     f"{r['quarantined']} | {_reasons(r.get('reasons', {}))} |")
    if not ingests:
        lines.append("| (no new source) | | | | | | |")
    lines += ["", "## Embed", "",
              f"- backbone `{embed.get('backbone')}` on {embed.get('device')}: {embed.get('embedded', 0)} segments embedded, "
              f"{embed.get('skipped_existing', 0)} already in the memory, in {embed.get('seconds', 0):.1f} s"]
    lines += ["", "## Curate", ""]
    lines.append(f"- rows: {curation.get('rows', 0)}; " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in
                                                                 (curation.get("counts") or {}).items()))
    lines.append(f"- near-duplicate pairs: {curation.get('duplicate_pairs', 0)}, label conflicts: "
                 f"{curation.get('conflict_pairs', 0)}")
    lines.append(f"- budget: {budget_text(curation.get('budget'), curation.get('params'))}")
    lines.append(f"- LanceDB version {curation.get('lance_version')} tagged `{curation.get('lance_tag')}`")
    lines += ["", "## Release", ""]
    if release:
        lines.append(f"- `{release.get('uri')}`: {release.get('vectors')} vectors, {release.get('classes')} classes, "
                     f"index `{release.get('factory')}`, recall@10 {release.get('recall_at_10')}"
                     + (" (unchanged memory: existing release kept)" if release.get("reused") else ""))
        if release.get("alias"):
            lines.append(f"- alias `{release['alias']}` -> version {release['version']}")
        lines += mlflow_links(release)
    lines += ["", "## Promotion", "", f"- {promotion_text(promotion)}"]
    if diff:
        lines += ["", f"## Diff against version {diff.get('a')}", "",
                  f"- classes added: {', '.join(f'{k} ({v})' for k, v in diff.get('added', {}).items()) or 'none'}",
                  f"- classes removed: {', '.join(f'{k} ({v})' for k, v in diff.get('removed', {}).items()) or 'none'}",
                  f"- classes with changed counts: {len(diff.get('changed', {}))}"]
    return "\n".join(lines) + "\n"


def class_table(curation: dict) -> list[dict]:
    """Per-class rows of the curation report (rows and count per curation state), for a table
    artifact. Every row has every column (the union of the keys, blanks as 0): a class with no
    duplicate still has a `duplicate` column, which the table view needs."""
    per_class = curation.get("per_class") or {}
    columns = list(STATE_COLUMNS)
    for counts in per_class.values():
        columns += [k for k, v in counts.items() if k not in columns and isinstance(v, (int, float, str))]
    return [{"class": name, **{k: counts.get(k, 0) for k in columns}} for name, counts in sorted(per_class.items())]


def diff_line(diff: dict) -> str:
    """'diff: against version 1, 2 classes added, 0 removed, 3 with changed counts'."""
    return (f"diff: against version {diff.get('a')}, {_n(len(diff.get('added') or {}), 'class', 'classes')} added, "
            f"{len(diff.get('removed') or {}):,} removed, {len(diff.get('changed') or {}):,} with changed counts")
