"""The memory composition page (`/`) from `data.memory_overview`'s dict (templates memory*.html)."""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from markupsafe import Markup

from .charts import STATE_COLOURS, STATE_LABELS, inline_bar, state_bar
from .html import page, render
from .pages_inspect import inspect_html

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


def _class_table(per_class: dict, view: dict | None = None) -> Markup:
    """One compact table (class, inline bar, counts by state) with a filter and paging (`view`: q, page)."""
    view = view or {}
    query = view.get("q", "")
    states = list(SHOWN_STATES) + (["pending"] if any(c.get("pending") for c in per_class.values()) else [])
    names = _class_rows(per_class, query)
    per_page = max(1, int(view.get("per_page", PER_PAGE)))
    pages = max(1, -(-len(names) // per_page))
    page_no = min(max(1, int(view.get("page", 1))), pages)
    shown = names[(page_no - 1) * per_page: page_no * per_page]
    biggest = max((per_class[c].get("rows", 0) for c in per_class), default=1)
    # inline_bar: Markup of svg.html (autoescaped), written into the table as is
    rows = [(name, inline_bar(per_class[name], biggest), per_class[name]) for name in shown]
    what = f"{len(names)} of {len(per_class)} classes" if len(names) != len(per_class) else f"{len(per_class)} classes"
    links = [(label, urlencode({"q": query, "page": target}))
             for label, target in (("\u2190 previous", page_no - 1), ("next \u2192", page_no + 1)) if 1 <= target <= pages]
    return render("class_table.html", query=query, rows=rows, states=states,
                  headers=["class", "", "rows", *(STATE_LABELS[s] for s in states)],
                  no_match=f"No class matches {view.get('q')!r}.", pager=f"{what}, page {page_no} of {pages}",
                  links=links)


def memory_card(m: dict, view: dict | None = None, inspection: dict | None = None) -> Markup:
    """One memory table: totals, state bar, the per-class table (`view`: q, page), the conflicts,
    duplicates and projection of `inspection`, curation history."""
    runs = []
    for r in m.get("runs", []):
        counts = r.get("counts") or {}
        outcome = ", ".join(f"{STATE_LABELS.get(s, s)} {n}" for s, n in counts.items() if n) or (r.get("error") or "")
        runs.append({**r, "outcome": outcome, "params_text": _params(r.get("params"))})
    if m.get("error"):
        return render("memory_card.html", m=m, runs=runs)
    per_class = m.get("per_class") or {}
    # state_bar, classes, extra: Markup of autoescaped templates (svg.html, class_table.html, inspect.html)
    return render("memory_card.html", m=m, runs=runs, counts=m.get("counts", {}), state_bar=state_bar(m.get("counts", {})),
                  classes=_class_table(per_class, view or {}) if per_class else None,
                  extra=inspect_html(inspection) if inspection else None)


def _reasons(reasons: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in reasons.items()) or "-"


def memory_page(data: dict, view: dict | None = None, inspections: dict | None = None) -> str:
    """The whole memory composition page; `inspections` maps embedder id -> memory_data.inspect_memory."""
    # cards: Markup of memory_card.html (autoescaped)
    cards = [memory_card(m, view, (inspections or {}).get(m["embedder_id"])) for m in data["memories"]]
    catalog = data.get("catalog")
    batches = [{**b, "reasons_text": _reasons(b["quarantine_reasons"])} for b in (catalog or {}).get("batches", [])]
    body = render("memory.html", errors=data.get("errors", []), cards=cards, empty_memory=EMPTY_MEMORY,
                  rules=data.get("forget_rules", []), catalog=catalog, batches=batches, empty_catalog=EMPTY_CATALOG,
                  states=STATE_COLOURS, labels=STATE_LABELS)
    return page("Memory composition", "/", body, home=data.get("home", ""))
