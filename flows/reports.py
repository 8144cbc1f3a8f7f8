"""What a pipeline run reports beyond the stage lines (each stage's result renders its own,
knnclip_core/stages/results.py): the markdown summary and the per-class table (Prefect
artifacts). Pure functions of the stage results' JSON."""
from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from knnclip_core.redact import redact_url
from knnclip_core.stages.results import PromoteResult
from knnclip_core.stages.text import budget_text, count, reasons_text

__all__ = ["STATE_COLUMNS", "budget_text", "class_table", "diff_line", "mlflow_links", "pipeline_markdown",
           "promotion_text", "redact_uri"]

STATE_COLUMNS = ("rows", "kept", "duplicate", "conflict", "over_budget", "forgotten")


def promotion_text(p: Optional[dict]) -> str:
    """The promotion result in words: promoted (and the gate's verdict), refused (and why), or
    not asked (None): the promote stage's line without its stage name."""
    return (PromoteResult.from_json(p) if p else PromoteResult()).text_only()


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
                     f"{r['quarantined']} | {reasons_text(r.get('reasons', {}))} |")
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
    return (f"diff: against version {diff.get('a')}, {count(len(diff.get('added') or {}), 'class', 'classes')} added, "
            f"{len(diff.get('removed') or {}):,} removed, {len(diff.get('changed') or {}):,} with changed counts")
