"""The quarantine page (`/quarantine`): what ingest set aside, item by item, with the reason
code, the message and a thumbnail of the image when it can be read (template quarantine.html)."""
from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode

from knnclip_core.catalog.queries import quarantine_items

from .html import page, render
from .images import thumbnail

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


def quarantine_page(data: dict, batches: list, batch: Optional[str] = None, reason: Optional[str] = None) -> str:
    """The page: counts by reason, filters, the items (thumbnail, file, row, reason, message), paging."""
    batch_opts = [(b["id"], f"{b['id']} ({b['dataset']}, {b['quarantined']})") for b in batches if b["quarantined"]]
    reason_opts = [(r, f"{r} ({n})") for r, n in data["reasons"].items()]
    links = [(label, urlencode({k: v for k, v in (("batch", batch), ("reason", reason), ("page", target)) if v}))
             for label, target in (("\u2190 previous", data["page"] - 1), ("next \u2192", data["page"] + 1))
             if 1 <= target <= data["pages"]]
    none_text = "Nothing is quarantined" + (" with these filters." if batch or reason else
                                            ": every ingested image and segment passed validation.")
    pager = f'{len(data["items"])} of {data["total"]} items, page {data["page"]} of {data["pages"]}'
    tiles = [("matching", data["total"]), *data["reasons"].items()]
    body = render("quarantine.html", data=data, tiles=tiles, items=data["items"], batch=batch, reason=reason, batch_opts=batch_opts,
                  reason_opts=reason_opts, none_text=none_text, pager=pager, links=links)
    return page("Quarantine", "/quarantine", body)
