"""Markdown and table reports of a pipeline run, published as Prefect artifacts."""
from __future__ import annotations

from typing import Optional


def _reasons(reasons: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "none"


def pipeline_markdown(ingests: list[dict], embed: dict, curation: dict, release: Optional[dict],
                      diff: Optional[dict], mlflow_url: Optional[str]) -> str:
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
    budget = curation.get("budget") or {}
    if budget:
        lines.append(f"- budget: {budget}")
    lines.append(f"- LanceDB version {curation.get('lance_version')} tagged `{curation.get('lance_tag')}`")
    lines += ["", "## Release", ""]
    if release:
        lines.append(f"- `{release.get('uri')}`: {release.get('vectors')} vectors, {release.get('classes')} classes, "
                     f"index `{release.get('factory')}`, recall@10 {release.get('recall_at_10')}"
                     + (" (unchanged memory: existing release kept)" if release.get("reused") else ""))
        if release.get("alias"):
            lines.append(f"- alias `{release['alias']}` -> version {release['version']}")
        if mlflow_url:
            lines.append(f"- MLflow run: {mlflow_url}")
    if diff:
        lines += ["", f"## Diff against version {diff.get('a')}", "",
                  f"- classes added: {', '.join(f'{k} ({v})' for k, v in diff.get('added', {}).items()) or 'none'}",
                  f"- classes removed: {', '.join(f'{k} ({v})' for k, v in diff.get('removed', {}).items()) or 'none'}",
                  f"- classes with changed counts: {len(diff.get('changed', {}))}"]
    return "\n".join(lines) + "\n"


def class_table(curation: dict) -> list[dict]:
    """Per-class rows of the curation report (kept / dropped counts), for a table artifact."""
    per_class = curation.get("per_class") or {}
    rows = []
    for name, counts in sorted(per_class.items()):
        rows.append({"class": name, **{k: v for k, v in counts.items() if isinstance(v, (int, float, str))}})
    return rows
