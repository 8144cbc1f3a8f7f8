"""The dashboard's Jinja2 environment (templates in dashboards/templates/, autoescaped) and the
number / size / time formats its templates use.

Everything is server-rendered text: no JavaScript, no external assets, so the pages work
offline. Every value reaches HTML through a template with autoescape on; the only values passed
in as `Markup` are the outputs of other templates of this environment (charts, tables, cards).
"""
from __future__ import annotations

import logging
import math
import re
from typing import Any, Optional

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from knnclip_core.classnames import display_name

logger = logging.getLogger(__name__)

CODE_RE = re.compile(r"`([^`]+)`")
LAYOUT_RE = re.compile(r"\n[ \t]*")  # a line break and the indentation after it: template layout only
NAV = (("/", "Memory"), ("/quarantine", "Quarantine"), ("/releases", "Releases"), ("/try", "Try it"))


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


def code_spans(text: Any) -> Markup:
    """`text` escaped, with its `command` spans as <code> elements."""
    # Markup built from escaped parts: the whole text is escaped first, then only the backtick
    # pairs (which escaping leaves alone) become <code> tags around already-escaped text.
    return Markup(CODE_RE.sub(r"<code>\1</code>", str(escape("" if text is None else text))))


class _TemplateLoader(PackageLoader):
    """dashboards/templates/, with line breaks and the indentation after them removed so that
    templates can be laid out on several lines and still render compact HTML (as before)."""

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        return LAYOUT_RE.sub("", source), filename, uptodate


ENV = Environment(loader=_TemplateLoader("dashboards", "templates"), autoescape=True, undefined=StrictUndefined,
                  finalize=lambda v: "" if v is None else v)  # None shows as nothing, as `esc` did
ENV.filters.update(fmt_num=fmt_num, fmt_bytes=fmt_bytes, fmt_time=fmt_time, display_name=display_name,
                   code_spans=code_spans)
ENV.globals.update(nav=NAV)


def render(name: str, **context: Any) -> Markup:
    """Template `name` rendered with `context` (autoescaped; the result is Markup for other templates)."""
    # Markup: the output of a template of ENV, every value in it escaped (or itself such a Markup)
    return Markup(ENV.get_template(name).render(**context))


def page(title: str, active: str, body: Markup, home: str = "") -> str:
    """A full HTML document: nav bar (with `active` highlighted), the title and `body` (Markup of a template)."""
    # body: Markup of a page template (autoescaped), written into page.html as is
    return str(render("page.html", title=title, active=active, body=body, home=home))


def error_page(text: str) -> str:
    """The page of an unexpected error: `text` in an error notice."""
    return page("Something went wrong", "", render("notice.html", text=text, kind="error"))
