"""HTML of the memory composition page (`/`) from `data.memory_overview`'s dict."""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from knnclip_core.classnames import display_name

from .charts import STATE_COLOURS, STATE_LABELS, inline_bar, state_bar
from .pages_inspect import inspect_html
from .html import Raw, esc, fmt_bytes, fmt_time, notice, page, stats, table

logger = logging.getLogger(__name__)

EMPTY_MEMORY = ("No memory yet. Ingest labelled data, embed it and curate it: "
                "`knnclip ingest PATH`, `knnclip embed`, `knnclip curate` "
                "(or `knnclip sample-data DIR` for a small synthetic dataset).")
EMPTY_CATALOG = "The catalog is empty: nothing has been ingested yet (`knnclip ingest PATH`)."
SHOWN_STATES = ("kept", "duplicate", "conflict", "over_budget", "forgotten")
PER_PAGE = 50  # classes per page of the class table


def _params(params: dict) -> str:
    """Curation parameters as 'key=value' text, unset ones left out."""
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted((params or {}).items()) if v is not None)


def _class_rows(per_class: dict, query: str) -> list[str]:
    """Class names matching `query` (any synonym, case-insensitive), largest first."""
    q = (query or "").strip().lower()
    names = sorted(per_class, key=lambda c: (-per_class[c].get("rows", 0), c))
    return [c for c in names if q in c.lower()] if q else names


def _class_table(per_class: dict, view: dict | None = None) -> str:
    """One compact table (class, inline bar, counts by state) with a filter and paging (`view`: q, page)."""
    view = view or {}
    states = list(SHOWN_STATES) + (["pending"] if any(c.get("pending") for c in per_class.values()) else [])
    names = _class_rows(per_class, view.get("q", ""))
    per_page = max(1, int(view.get("per_page", PER_PAGE)))
    pages = max(1, -(-len(names) // per_page))
    page_no = min(max(1, int(view.get("page", 1))), pages)
    shown = names[(page_no - 1) * per_page: page_no * per_page]
    biggest = max((per_class[c].get("rows", 0) for c in per_class), default=1)
    rows = [[display_name(name), Raw(inline_bar(per_class[name], biggest)), per_class[name].get("rows", 0),
             *(per_class[name].get(s, 0) for s in states)] for name in shown]
    body = table(["class", "", "rows", *(STATE_LABELS[s] for s in states)], rows,
                 numeric=range(2, len(states) + 3)) if rows else notice(f"No class matches {view.get('q')!r}.")
    form = (f'<form class="inline" method="get" action="/"><label>Filter classes <input type="search" name="q" '
            f'value="{esc(view.get("q", ""))}" placeholder="name or synonym"></label>'
            f'<button type="submit">Filter</button></form>')
    return form + body + _pager(len(names), len(per_class), page_no, pages, view.get("q", ""))


def _pager(matching: int, total: int, page_no: int, pages: int, query: str) -> str:
    what = f"{matching} of {total} classes" if matching != total else f"{total} classes"
    links = []
    for label, target in (("\u2190 previous", page_no - 1), ("next \u2192", page_no + 1)):
        if 1 <= target <= pages:
            links.append(f'<a href="/?{esc(urlencode({"q": query, "page": target}))}">{label}</a>')
    return f'<div class="muted pager">{what}, page {page_no} of {pages} {" ".join(links)}</div>'


def _runs_table(runs: list) -> str:
    if not runs:
        return notice("No curation run yet for this memory: run `knnclip curate`.")
    rows = []
    for r in runs:
        counts = r.get("counts") or {}
        outcome = ", ".join(f"{STATE_LABELS.get(s, s)} {n}" for s, n in counts.items() if n) or (r.get("error") or "")
        rows.append([r["run_id"], r["status"], fmt_time(r.get("finished") or r.get("started")),
                     r.get("lance_version"), Raw(f'<span class="nowrap">{esc(r.get("lance_tag") or "-")}</span>'), r.get("changed_rows"), outcome,
                     Raw(f'<span class="mono">{esc(_params(r.get("params")))}</span>')])
    return table(["run", "status", "finished", "LanceDB version", "tag", "changed rows", "outcome", "parameters"],
                 rows, numeric=(0, 3, 5))


def memory_card(m: dict, view: dict | None = None, inspection: dict | None = None) -> str:
    """One memory table: totals, state bar, the per-class table (`view`: q, page), the conflicts,
    duplicates and projection of `inspection`, curation history."""
    head = f'<h2>Memory <span class="mono">{esc(m.get("table", ""))}</span></h2>' \
           f'<div class="muted mono">embedder {esc(m["embedder_id"])}</div>'
    if m.get("error"):
        return f'<section class="card">{head}{notice("This memory cannot be read: " + m["error"], "error")}' \
               f'<h3>Curation history</h3>{_runs_table(m.get("runs", []))}</section>'
    counts = m.get("counts", {})
    tiles = stats([("rows", m.get("rows", 0)), ("classes", m.get("classes", 0)), ("kept", counts.get("kept", 0)),
                   ("duplicates", m.get("duplicates", 0)), ("conflicts", m.get("conflicts", 0)),
                   ("over budget", counts.get("over_budget", 0)), ("forgotten", counts.get("forgotten", 0)),
                   ("pending", counts.get("pending", 0)),
                   ("kept index size", fmt_bytes(m.get("kept_index_bytes"))),
                   ("table on disk", fmt_bytes(m.get("table_bytes")))])
    meta = (f'<div class="muted">dim {esc(m.get("dim"))}, {esc(m.get("bytes_per_vector"))} bytes per vector, '
            f'LanceDB version {esc(m.get("lance_version"))}, latest tag {esc(m.get("latest_tag") or "none")}'
            f'{" (version " + esc(m.get("latest_tag_version")) + ")" if m.get("latest_tag") else ""}, '
            f'{esc(m.get("fragments"))} fragment(s)</div>')
    per_class = m.get("per_class") or {}
    if per_class:
        classes = f"<h3>Rows per class by curation state</h3>{_class_table(per_class, view or {})}"
    else:
        classes = notice("This memory holds no rows yet: run `knnclip embed`.")
    extra = inspect_html(inspection) if inspection else ""
    return (f'<section class="card">{head}{tiles}{state_bar(counts)}{meta}{classes}{extra}'
            f'<h3>Curation history (newest first)</h3>{_runs_table(m.get("runs", []))}</section>')


def _reasons(reasons: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in reasons.items()) or "-"


def catalog_card(catalog: dict | None) -> str:
    """Datasets and ingest batches (most recent first) with quarantine counts by reason."""
    if catalog is None:
        return ""
    if not catalog["datasets"] and not catalog["batches"]:
        return f'<section class="card"><h2>Catalog</h2>{notice(EMPTY_CATALOG)}</section>'
    t = catalog["totals"]
    tiles = stats([("datasets", t["datasets"]), ("ingest batches", t["batches"]), ("images", t["images"]),
                   ("segments", t["segments"]), ("quarantined", t["quarantined"])])
    ds = table(["dataset", "batches", "images", "segments", "created"],
               [[d["name"], d["batches"], d["images"], d["segments"], fmt_time(d["created"])]
                for d in catalog["datasets"]], numeric=(1, 2, 3))
    batches = table(["batch", "dataset", "format", "status", "started", "images", "segments", "new", "classes",
                     "quarantined", "quarantine reasons", "source"],
                    [[Raw(f'<span class="mono">{esc(b["id"])}</span>'), b["dataset"], b["format"],
                      b["status"] + (f" ({b['error']})" if b.get("error") else ""), fmt_time(b["started"]),
                      b["images"], b["segments"], b["new_segments"], b["classes"], b["quarantined"],
                      _reasons(b["quarantine_reasons"]), Raw(f'<span class="mono">{esc(b["source"])}</span>')]
                     for b in catalog["batches"]], numeric=(5, 6, 7, 8, 9))
    return (f'<section class="card"><h2>Catalog</h2>{tiles}<h3>Datasets</h3>{ds}'
            f"<h3>Ingest batches (most recent first)</h3>{batches}</section>")


def forget_card(rules: list) -> str:
    """Forget rules, when any."""
    if not rules:
        return ""
    rows = [[r["id"], r["kind"], r["value"], r.get("reason") or "-", "active" if r["active"] else "inactive",
             fmt_time(r["created"])] for r in rules]
    return f'<section class="card"><h2>Forget rules</h2>{table(["rule", "kind", "value", "reason", "state", "created"], rows, numeric=(0,))}</section>'


def memory_page(data: dict, view: dict | None = None, inspections: dict | None = None) -> str:
    """The whole memory composition page; `inspections` maps embedder id -> memory_data.inspect_memory."""
    parts = [notice(e, "error") for e in data.get("errors", [])]
    if data["memories"]:
        parts += [memory_card(m, view, (inspections or {}).get(m["embedder_id"])) for m in data["memories"]]
    else:
        parts.append(notice(EMPTY_MEMORY))
    parts.append(forget_card(data.get("forget_rules", [])))
    parts.append(catalog_card(data.get("catalog")))
    legend = "".join(f'<span class="pill"><span class="swatch" style="background:{c}"></span>{esc(STATE_LABELS[s])}'
                     f"</span>" for s, c in STATE_COLOURS)
    intro = f'<p class="muted">What each memory (one per embedder) holds, by curation state. {legend}</p>'
    return page("Memory composition", "/", intro + "".join(parts), home=data.get("home", ""))
