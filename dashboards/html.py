"""Small HTML building blocks: the page shell (nav bar, inline CSS), tables, notices.

Everything is server-rendered text: no JavaScript, no external assets, so the pages work
offline. Every value that reaches HTML goes through `esc`.
"""
from __future__ import annotations

import html
import logging
import math
import re
from typing import Any, Iterable, Optional, Sequence

logger = logging.getLogger(__name__)

CODE_RE = re.compile(r"`([^`]+)`")
NAV = (("/", "Memory"), ("/quarantine", "Quarantine"), ("/releases", "Releases"), ("/try", "Try it"))

CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2933;background:#f4f6f8}
nav{background:#1f2933;color:#fff;display:flex;align-items:center;gap:4px;padding:0 24px;height:48px}
nav .brand{font-weight:700;margin-right:20px;letter-spacing:.02em}
nav a{color:#cbd2d9;text-decoration:none;padding:14px 12px;border-bottom:3px solid transparent}
nav a:hover{color:#fff}
nav a.active{color:#fff;border-bottom-color:#3ebd93}
nav .home{margin-left:auto;color:#9aa5b1;font-size:12px;font-family:ui-monospace,monospace}
main{max-width:1180px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:22px;margin:4px 0 16px}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:16px 0 8px;color:#3e4c59}
.card{background:#fff;border:1px solid #e4e7eb;border-radius:8px;padding:16px 18px;margin-bottom:18px}
.muted{color:#7b8794}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px;word-break:break-all}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 14px}
.stat{background:#f5f7fa;border-radius:6px;padding:8px 12px;min-width:104px}
.stat b{display:block;font-size:18px}
.stat span{font-size:12px;color:#616e7c}
table{border-collapse:collapse;width:100%;margin:4px 0 8px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e4e7eb;vertical-align:top}
th{font-size:12px;color:#616e7c;font-weight:600;background:#f5f7fa}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.notice{border-radius:6px;padding:12px 14px;margin:0 0 16px;border:1px solid}
.notice.empty{background:#f0f4f8;border-color:#bcccdc;color:#334e68}
.notice.error{background:#fff5f5;border-color:#f8b4b4;color:#8a1c1c}
.notice.ok{background:#effcf6;border-color:#8eedc7;color:#0c6b58}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#e4e7eb;margin-right:4px}
.pill.production{background:#c6f7e2;color:#014d40}
.pill.staging{background:#fce588;color:#5c4813}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.add{color:#0c6b58}.del{color:#ab091e}
form.inline{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
button{background:#2680c2;color:#fff;border:0;border-radius:5px;padding:7px 14px;font-size:14px;cursor:pointer}
select,input[type=file]{font-size:14px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:18px}
img.result{width:100%;height:auto;image-rendering:pixelated;border-radius:6px;border:1px solid #e4e7eb}
.nowrap{white-space:nowrap}
svg{max-width:100%;height:auto}
code{background:#f0f4f8;padding:1px 5px;border-radius:4px;font-size:12px}
img.crop{max-width:160px;max-height:160px;border-radius:4px;border:1px solid #e4e7eb;vertical-align:middle}
.noimg{display:inline-block;padding:18px 8px;font-size:11px;color:#9aa5b1;border:1px dashed #cbd2d9;border-radius:4px}
.crops{display:flex;flex-wrap:wrap;gap:6px;align-items:flex-start}
.crops figure{margin:0;font-size:11px;color:#52606d;text-align:center}
svg.bar{vertical-align:middle}
.pager a{margin-left:10px}
.mono.file{word-break:normal;white-space:nowrap}
input[type=search],input[type=password],input[type=text]{font-size:14px;padding:5px 8px;border:1px solid #cbd2d9;border-radius:5px}
"""


def esc(value: Any) -> str:
    """HTML-escaped text of `value` ('' for None)."""
    return "" if value is None else html.escape(str(value), quote=True)


def fmt_num(value: Any, digits: int = 4) -> str:
    """A number for display: thousands separators for ints, `digits` decimals for floats, '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
    return str(value)


def fmt_bytes(n: Optional[int]) -> str:
    """1536 -> '1.5 KB' (decimal units); '-' for None."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def fmt_time(iso: Optional[str]) -> str:
    """'2026-01-02T03:04:05.123+00:00' -> '2026-01-02 03:04:05'; '-' for None."""
    if not iso:
        return "-"
    text = str(iso).replace("T", " ")
    return text[:19]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """An HTML table. Cells are escaped unless they are `Raw`; columns in `numeric` align right."""
    num = set(numeric)
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in num else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell.html if isinstance(cell, Raw) else esc(fmt_num(cell) if i in num else cell)
            cells.append(f'<td class="num">{text}</td>' if i in num else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class Raw:
    """Markup that `table` inserts as is (already escaped by its maker)."""

    def __init__(self, html_text: str):
        self.html = html_text

    def __str__(self) -> str:
        return self.html


def notice(text: str, kind: str = "empty") -> str:
    """A boxed message: kind 'empty' (nothing to show yet), 'error' or 'ok'. `text` is escaped;
    `command` spans become <code>."""
    body = CODE_RE.sub(r"<code>\1</code>", esc(text))
    return f'<div class="notice {esc(kind)}">{body}</div>'


def stats(items: Sequence[tuple[str, Any]]) -> str:
    """A row of big-number tiles: [(label, value), ...]."""
    tiles = "".join(f'<div class="stat"><b>{esc(v if isinstance(v, str) else fmt_num(v))}</b>'
                    f"<span>{esc(label)}</span></div>" for label, v in items)
    return f'<div class="stats">{tiles}</div>'


def pills(names: Iterable[str]) -> str:
    """Alias names as coloured pills."""
    return "".join(f'<span class="pill {esc(n)}">{esc(n)}</span>' for n in names)


def page(title: str, active: str, body: str, home: str = "") -> str:
    """A full HTML document: nav bar (with `active` highlighted), the title and `body`."""
    links = "".join(f'<a href="{href}" class="{"active" if href == active else ""}">{esc(label)}</a>'
                    for href, label in NAV)
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><link rel=\"icon\" href=\"data:,\">"
            f"<title>{esc(title)} - knnclip</title><style>{CSS}</style></head><body>"
            f'<nav><span class="brand">knnclip</span>{links}<span class="home">{esc(home)}</span></nav>'
            f"<main><h1>{esc(title)}</h1>{body}</main></body></html>")
