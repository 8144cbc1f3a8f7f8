"""Inline SVG charts (no JavaScript): stacked horizontal bars per class, a single stacked bar
of totals, vertical bars of one number per release, and lines of quality across releases.

Python works out the geometry as `El` elements; template svg.html writes them (escaped).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from markupsafe import Markup

from knnclip_core.classnames import display_name

from .html import fmt_num, render

logger = logging.getLogger(__name__)

# Curation states in display order, with their colours.
STATE_COLOURS = (("kept", "#3ebd93"), ("duplicate", "#9fb3c8"), ("conflict", "#ef4e4e"),
                 ("over_budget", "#f0b429"), ("forgotten", "#7c5e10"), ("pending", "#c5b8f2"))
STATE_LABELS = {"kept": "kept", "duplicate": "duplicate", "conflict": "conflict", "over_budget": "over budget",
                "forgotten": "forgotten", "pending": "pending"}




class El(NamedTuple):
    """One SVG element: `<tag attrs/>`, or `<tag attrs>text<title>title</title></tag>` when it has text or a title."""
    tag: str
    attrs: tuple
    text: Any = None
    title: Any = None


def _svg(root: dict, parts: Sequence[El]) -> Markup:
    """The <svg> element with attributes `root` around `parts` (rendered by svg.html, autoescaped)."""
    return render("svg.html", root=list(root.items()), parts=parts)


def _chart(label: str, width: int, height: int, parts: Sequence[El]) -> Markup:
    return _svg({"role": "img", "aria-label": label, "width": width, "height": height,
                 "viewBox": f"0 0 {width} {height}", "xmlns": "http://www.w3.org/2000/svg",
                 "font-family": "system-ui,sans-serif"}, parts)


def _text(x, y, text, size: int = 12, fill: str = "#3e4c59", anchor: Optional[str] = None, title=None) -> El:
    attrs = (("x", x), ("y", y), ("font-size", size)) + ((("text-anchor", anchor),) if anchor else ()) + (("fill", fill),)
    return El("text", attrs, text, title)


def legend(width: int, y: int, items: Sequence[tuple[str, str]]) -> list[El]:
    """SVG legend row at height `y`: [(label, colour)]."""
    out, x = [], 0
    for label, colour in items:
        out += [El("rect", (("x", x), ("y", y), ("width", 11), ("height", 11), ("rx", 2), ("fill", colour))),
                _text(x + 16, y + 10, label)]
        x += 26 + 7 * len(label)
        if x > width - 80:
            break
    return out


def _f(v: float) -> str:
    return f"{v:.1f}"


def stacked_bars(rows: Mapping[str, Mapping[str, int]], width: int = 900, max_rows: int = 40,
                 label_width: int = 160, bar_height: int = 18) -> Markup:
    """Horizontal bar chart: one bar per class (key of `rows`), split by curation state, each
    bar scaled to the largest class. Shows the `max_rows` largest classes; '' for no rows."""
    if not rows:
        return Markup("")
    order = sorted(rows, key=lambda c: (-sum(rows[c].get(s, 0) for s, _ in STATE_COLOURS), c))[:max_rows]
    biggest = max(sum(rows[c].get(s, 0) for s, _ in STATE_COLOURS) for c in order) or 1
    plot = width - label_width - 60
    step = bar_height + 6
    top = 26
    parts = legend(width, 0, [(STATE_LABELS[s], col) for s, col in STATE_COLOURS])
    for i, name in enumerate(order):
        y = top + i * step
        shown = display_name(name)  # the first full name; all synonyms in the tooltip
        label = shown if len(shown) <= 22 else shown[:21] + "\u2026"
        parts.append(_text(label_width - 8, y + bar_height - 5, label, anchor="end", fill="#1f2933", title=name))
        x = float(label_width)
        total = 0
        for state, colour in STATE_COLOURS:
            n = int(rows[name].get(state, 0))
            if n <= 0:
                continue
            w = plot * n / biggest
            parts.append(El("rect", (("x", _f(x)), ("y", y), ("width", _f(max(w, 1))), ("height", bar_height),
                                     ("fill", colour)), "", f"{name}: {n} {STATE_LABELS[state]}"))
            x += w
            total += n
        parts.append(_text(_f(x + 6), y + bar_height - 5, fmt_num(total), fill="#52606d"))
    return _chart("rows per class by curation state", width, top + len(order) * step, parts)


def _state_rects(counts: Mapping[str, int], scale: int, width: int, height: int, labels: bool) -> tuple[list[El], int]:
    """SVG rects of a bar split by curation state, `scale` rows = `width` px; (parts, total)."""
    total = sum(int(counts.get(s, 0)) for s, _ in STATE_COLOURS)
    parts, x = [], 0.0
    for state, colour in STATE_COLOURS:
        n = int(counts.get(state, 0))
        if n <= 0:
            continue
        w = width * n / max(scale or total, 1)
        share = f" ({100 * n / total:.1f}%)" if labels else ""
        parts.append(El("rect", (("x", _f(x)), ("y", 0), ("width", _f(max(w, 1))), ("height", height), ("fill", colour)),
                        "", f"{n} {STATE_LABELS[state]}{share}"))
        if labels and w > 70:
            parts.append(_text(_f(x + 6), height - 6, f"{STATE_LABELS[state]} {fmt_num(n)}", fill="#102a43"))
        x += w
    return parts, total


def state_bar(counts: Mapping[str, int], width: int = 900, height: int = 22) -> Markup:
    """One full-width bar split by curation state (totals of a memory); '' when empty."""
    parts, total = _state_rects(counts, 0, width, height, labels=True)
    if total <= 0:
        return Markup("")
    return _chart("rows by curation state", width, height, parts)


def column_bars(points: Sequence[tuple[str, float]], width: int = 900, height: int = 150,
                colour: str = "#2680c2", what: str = "") -> Markup:
    """Vertical bars, one per (label, value), scaled to the largest; '' when empty."""
    if not points:
        return Markup("")
    biggest = max(v for _, v in points) or 1
    width = min(width, 40 + 70 * len(points))
    slot = min(70, (width - 20) / len(points))
    bar = slot * 0.6
    plot = height - 36
    parts = [El("line", (("x1", 0), ("y1", plot + 14), ("x2", width), ("y2", plot + 14), ("stroke", "#cbd2d9")))]
    for i, (label, value) in enumerate(points):
        h = plot * value / biggest
        x = 10 + i * slot + (slot - bar) / 2
        y = plot + 14 - h
        parts += [El("rect", (("x", _f(x)), ("y", _f(y)), ("width", _f(bar)), ("height", _f(max(h, 1))), ("fill", colour)),
                     "", f"{label}: {fmt_num(value)} {what}"),
                  _text(_f(x + bar / 2), _f(y - 3), fmt_num(value), size=11, anchor="middle", fill="#52606d"),
                  _text(_f(x + bar / 2), height - 6, label, size=11, anchor="middle", fill="#1f2933")]
    return _chart(f"{what} per release", width, height, parts)


def inline_bar(counts: Mapping[str, int], biggest: int, width: int = 180, height: int = 12) -> Markup:
    """A small bar for one table row: split by curation state, scaled to `biggest`; '' when empty."""
    parts, total = _state_rects(counts, max(biggest, 1), width, height, labels=False)
    if total <= 0:
        return Markup("")
    return _svg({"class": "bar", "width": width, "height": height, "viewBox": f"0 0 {width} {height}",
                 "xmlns": "http://www.w3.org/2000/svg"}, parts)


def scatter(points: Sequence[tuple[float, float, int]], classes: Sequence[str], colours: Sequence[str],
            width: int = 900, height: int = 480, legend_max: int = 24) -> Markup:
    """SVG scatter of (x, y, class index) points, one colour per class, with a legend of the
    `legend_max` most frequent classes; '' when there are no points."""
    if not points:
        return Markup("")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    plot_w, pad = width - 220, 10
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (plot_w - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    parts = [El("rect", (("x", 0), ("y", 0), ("width", plot_w), ("height", height), ("fill", "#fbfcfd"),
                         ("stroke", "#e4e7eb")))]
    for x, y, c in points:
        parts.append(El("circle", (("cx", _f(pad + (x - x0) * sx)), ("cy", _f(height - pad - (y - y0) * sy)), ("r", 3),
                                   ("fill", colours[c]), ("fill-opacity", "0.8")), "", display_name(classes[c])))
    counts: dict[int, int] = {}
    for _, _, c in points:
        counts[c] = counts.get(c, 0) + 1
    top = sorted(counts, key=lambda c: (-counts[c], classes[c]))
    for i, c in enumerate(top[:legend_max]):
        y = 14 + i * 18
        name = display_name(classes[c])
        name = name if len(name) <= 22 else name[:21] + "\u2026"
        parts += [El("rect", (("x", plot_w + 14), ("y", y - 10), ("width", 11), ("height", 11), ("rx", 2), ("fill", colours[c]))),
                  _text(plot_w + 30, y, f"{name} ({counts[c]})")]
    if len(top) > legend_max:
        parts.append(_text(plot_w + 14, 14 + legend_max * 18, f"+ {len(top) - legend_max} more classes", fill="#7b8794"))
    return _chart("2-D projection of the memory by class", width, height, parts)


QUALITY_SERIES = (("miou", "mIoU", "#2680c2"), ("segment_accuracy", "segment accuracy", "#3ebd93"))


def quality_lines(points: Sequence[Mapping], series: Sequence[tuple[str, str, str]] = QUALITY_SERIES,
                  width: int = 900, height: int = 190) -> Markup:
    """Lines of figures in [0, 1] across releases: `points` [{'version', <key>: value or None}],
    oldest first; one line per (key, label, colour) of `series`, a dot per value with its
    figure in the tooltip; '' when there are no points."""
    if not points:
        return Markup("")
    left, top, bottom = 40, 24, 22
    width = min(width, left + 40 + 80 * len(points))
    plot_w, plot_h = width - left - 20, height - top - bottom
    step = plot_w / max(len(points) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (i * step if len(points) > 1 else plot_w / 2)
        return x, top + plot_h * (1 - max(0.0, min(1.0, float(v))))

    parts = legend(width, 0, [(label, colour) for _, label, colour in series])
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts += [El("line", (("x1", left), ("y1", _f(y)), ("x2", width - 10), ("y2", _f(y)), ("stroke", "#e4e7eb"))),
                  _text(left - 6, _f(y + 4), f"{tick:g}", size=11, anchor="end", fill="#7b8794")]
    for i, p in enumerate(points):
        x, _ = xy(i, 0)
        parts.append(_text(_f(x), height - 6, f"v{p['version']}", size=11, anchor="middle", fill="#1f2933"))
    for key, label, colour in series:
        dots = [(i, p[key]) for i, p in enumerate(points) if p.get(key) is not None]
        if len(dots) > 1:
            path = " ".join("{:.1f},{:.1f}".format(*xy(i, v)) for i, v in dots)
            parts.append(El("polyline", (("points", path), ("fill", "none"), ("stroke", colour), ("stroke-width", 2))))
        for i, v in dots:
            x, y = xy(i, v)
            parts.append(El("circle", (("cx", _f(x)), ("cy", _f(y)), ("r", 4), ("fill", colour)), "",
                            f"version {points[i]['version']}: {label} {float(v):.4f}"))
    return _chart("quality per release", width, height, parts)
