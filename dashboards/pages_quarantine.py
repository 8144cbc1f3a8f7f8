"""The quarantine page (`/quarantine`): what ingest set aside, item by item, with the reason
code, the message and a thumbnail of the image when it can be read."""
from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode

from knnclip_core.catalog.queries import quarantine_items

from .html import Raw, esc, notice, page, stats, table
from .images import thumbnail
from .pages_inspect import crop_img

PER_PAGE = 50


def quarantine_data(catalog_url: str, max_pixels: int, batch: Optional[str] = None, reason: Optional[str] = None,
                    page_no: int = 1, per_page: int = PER_PAGE, thumbs: bool = True) -> dict:
    """catalog.queries.quarantine_items of one page, each item with 'thumbnail' (data URI or None)
    when `thumbs`; plus 'page', 'pages', 'per_page'."""
    page_no = max(1, int(page_no))
    data = quarantine_items(catalog_url, batch=batch, reason=reason, limit=per_page, offset=(page_no - 1) * per_page)
    if thumbs:
        for item in data["items"]:
            item["thumbnail"] = thumbnail(item["root"], item["file"], max_pixels)
    data.update(page=page_no, per_page=per_page, pages=max(1, -(-data["total"] // per_page)))
    return data


def _filters(batches: list, reasons: dict, batch: Optional[str], reason: Optional[str]) -> str:
    def options(values, chosen, everything):
        opts = [f'<option value="">{everything}</option>']
        opts += [f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(label)}</option>'
                 for v, label in values]
        return "".join(opts)

    bopts = options([(b["id"], f"{b['id']} ({b['dataset']}, {b['quarantined']})") for b in batches if b["quarantined"]],
                    batch, "all batches")
    ropts = options([(r, f"{r} ({n})") for r, n in reasons.items()], reason, "all reasons")
    return (f'<form class="inline" method="get" action="/quarantine"><label>Batch <select name="batch">{bopts}'
            f'</select></label><label>Reason <select name="reason">{ropts}</select></label>'
            f'<button type="submit">Show</button></form>')


def quarantine_page(data: dict, batches: list, batch: Optional[str] = None, reason: Optional[str] = None) -> str:
    """The page: counts by reason, filters, the items (thumbnail, file, row, reason, message), paging."""
    parts = [f'<section class="card"><h2>Quarantined items</h2>'
             f'{stats([("matching", data["total"]), *((r, n) for r, n in data["reasons"].items())])}'
             f"{_filters(batches, data['reasons'], batch, reason)}</section>"]
    if not data["total"]:
        parts.append(notice("Nothing is quarantined" + (" with these filters." if batch or reason else
                                                         ": every ingested image and segment passed validation.")))
        return page("Quarantine", "/quarantine", "".join(parts))
    rows = [[q["id"], Raw(crop_img(q.get("thumbnail"), q["file"])),
             Raw(f'<span class="mono file">{esc(q["file"])}</span>'), q["segment"] or "(whole image)",
             Raw(f"<code>{esc(q['reason'])}</code>"), q["message"],
             Raw(f'<span class="mono">{esc(q["batch"])}</span><br>{esc(q["dataset"])}')] for q in data["items"]]
    links = []
    for label, target in (("\u2190 previous", data["page"] - 1), ("next \u2192", data["page"] + 1)):
        if 1 <= target <= data["pages"]:
            query = urlencode({k: v for k, v in (("batch", batch), ("reason", reason), ("page", target)) if v})
            links.append(f'<a href="/quarantine?{esc(query)}">{label}</a>')
    pager = (f'<div class="muted pager">{len(data["items"])} of {data["total"]} items, page {data["page"]} of '
             f'{data["pages"]} {" ".join(links)}</div>')
    parts.append(f'<section class="card">{table(["id", "image", "file", "row", "reason", "message", "batch"], rows, numeric=(0,))}'
                 f"{pager}</section>")
    return page("Quarantine", "/quarantine", "".join(parts))
