"""Inline SVG charts (no JavaScript): stacked horizontal bars per class, a single stacked bar
of totals, vertical bars of one number per release, and lines of quality across releases."""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

from knnclip_core.classnames import display_name

from .html import esc, fmt_num

logger = logging.getLogger(__name__)

# Curation states in display order, with their colours.
STATE_COLOURS = (("kept", "#3ebd93"), ("duplicate", "#9fb3c8"), ("conflict", "#ef4e4e"),
                 ("over_budget", "#f0b429"), ("forgotten", "#7c5e10"), ("pending", "#c5b8f2"))
STATE_LABELS = {"kept": "kept", "duplicate": "duplicate", "conflict": "conflict", "over_budget": "over budget",
                "forgotten": "forgotten", "pending": "pending"}


def legend(width: int, y: int, items: Sequence[tuple[str, str]]) -> str:
    """SVG legend row at height `y`: [(label, colour)]."""
    out, x = [], 0
    for label, colour in items:
        out.append(f'<rect x="{x}" y="{y}" width="11" height="11" rx="2" fill="{colour}"/>'
                   f'<text x="{x + 16}" y="{y + 10}" font-size="12" fill="#3e4c59">{esc(label)}</text>')
        x += 26 + 7 * len(label)
        if x > width - 80:
            break
    return "".join(out)


def stacked_bars(rows: Mapping[str, Mapping[str, int]], width: int = 900, max_rows: int = 40,
                 label_width: int = 160, bar_height: int = 18) -> str:
    """Horizontal bar chart: one bar per class (key of `rows`), split by curation state, each
    bar scaled to the largest class. Shows the `max_rows` largest classes; '' for no rows."""
    if not rows:
        return ""
    order = sorted(rows, key=lambda c: (-sum(rows[c].get(s, 0) for s, _ in STATE_COLOURS), c))[:max_rows]
    biggest = max(sum(rows[c].get(s, 0) for s, _ in STATE_COLOURS) for c in order) or 1
    plot = width - label_width - 60
    step = bar_height + 6
    top = 26
    parts = [legend(width, 0, [(STATE_LABELS[s], col) for s, col in STATE_COLOURS])]
    for i, name in enumerate(order):
        y = top + i * step
        shown = display_name(name)  # the first full name; all synonyms in the tooltip
        label = shown if len(shown) <= 22 else shown[:21] + "\u2026"
        parts.append(f'<text x="{label_width - 8}" y="{y + bar_height - 5}" font-size="12" text-anchor="end" '
                     f'fill="#1f2933">{esc(label)}<title>{esc(name)}</title></text>')
        x = float(label_width)
        total = 0
        for state, colour in STATE_COLOURS:
            n = int(rows[name].get(state, 0))
            if n <= 0:
                continue
            w = plot * n / biggest
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bar_height}" fill="{colour}">'
                         f"<title>{esc(name)}: {n} {esc(STATE_LABELS[state])}</title></rect>")
            x += w
            total += n
        parts.append(f'<text x="{x + 6:.1f}" y="{y + bar_height - 5}" font-size="12" fill="#52606d">'
                     f"{fmt_num(total)}</text>")
    height = top + len(order) * step
    return (f'<svg role="img" aria-label="rows per class by curation state" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
            f'font-family="system-ui,sans-serif">{"".join(parts)}</svg>')


def _state_rects(counts: Mapping[str, int], scale: int, width: int, height: int, labels: bool) -> tuple[list[str], int]:
    """SVG rects of a bar split by curation state, `scale` rows = `width` px; (parts, total)."""
    total = sum(int(counts.get(s, 0)) for s, _ in STATE_COLOURS)
    parts, x = [], 0.0
    for state, colour in STATE_COLOURS:
        n = int(counts.get(state, 0))
        if n <= 0:
            continue
        w = width * n / max(scale or total, 1)
        share = f" ({100 * n / total:.1f}%)" if labels else ""
        parts.append(f'<rect x="{x:.1f}" y="0" width="{max(w, 1):.1f}" height="{height}" fill="{colour}">'
                     f"<title>{n} {esc(STATE_LABELS[state])}{share}</title></rect>")
        if labels and w > 70:
            parts.append(f'<text x="{x + 6:.1f}" y="{height - 6}" font-size="12" fill="#102a43">'
                         f"{esc(STATE_LABELS[state])} {fmt_num(n)}</text>")
        x += w
    return parts, total


def state_bar(counts: Mapping[str, int], width: int = 900, height: int = 22) -> str:
    """One full-width bar split by curation state (totals of a memory); '' when empty."""
    parts, total = _state_rects(counts, 0, width, height, labels=True)
    if total <= 0:
        return ""
    return (f'<svg role="img" aria-label="rows by curation state" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
            f'font-family="system-ui,sans-serif">{"".join(parts)}</svg>')


def column_bars(points: Sequence[tuple[str, float]], width: int = 900, height: int = 150,
                colour: str = "#2680c2", what: str = "") -> str:
    """Vertical bars, one per (label, value), scaled to the largest; '' when empty."""
    if not points:
        return ""
    biggest = max(v for _, v in points) or 1
    width = min(width, 40 + 70 * len(points))
    slot = min(70, (width - 20) / len(points))
    bar = slot * 0.6
    plot = height - 36
    parts = [f'<line x1="0" y1="{plot + 14}" x2="{width}" y2="{plot + 14}" stroke="#cbd2d9"/>']
    for i, (label, value) in enumerate(points):
        h = plot * value / biggest
        x = 10 + i * slot + (slot - bar) / 2
        y = plot + 14 - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 1):.1f}" fill="{colour}">'
                     f"<title>{esc(label)}: {fmt_num(value)} {esc(what)}</title></rect>"
                     f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" font-size="11" text-anchor="middle" '
                     f'fill="#52606d">{fmt_num(value)}</text>'
                     f'<text x="{x + bar / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle" '
                     f'fill="#1f2933">{esc(label)}</text>')
    return (f'<svg role="img" aria-label="{esc(what)} per release" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
            f'font-family="system-ui,sans-serif">{"".join(parts)}</svg>')


def inline_bar(counts: Mapping[str, int], biggest: int, width: int = 180, height: int = 12) -> str:
    """A small bar for one table row: split by curation state, scaled to `biggest`; '' when empty."""
    parts, total = _state_rects(counts, max(biggest, 1), width, height, labels=False)
    if total <= 0:
        return ""
    return (f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>')


def scatter(points: Sequence[tuple[float, float, int]], classes: Sequence[str], colours: Sequence[str],
            width: int = 900, height: int = 480, legend_max: int = 24) -> str:
    """SVG scatter of (x, y, class index) points, one colour per class, with a legend of the
    `legend_max` most frequent classes; '' when there are no points."""
    if not points:
        return ""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    plot_w, pad = width - 220, 10
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (plot_w - 2 * pad) / ((x1 - x0) or 1)
    sy = (height - 2 * pad) / ((y1 - y0) or 1)
    parts = [f'<rect x="0" y="0" width="{plot_w}" height="{height}" fill="#fbfcfd" stroke="#e4e7eb"/>']
    for x, y, c in points:
        parts.append(f'<circle cx="{pad + (x - x0) * sx:.1f}" cy="{height - pad - (y - y0) * sy:.1f}" r="3" '
                     f'fill="{colours[c]}" fill-opacity="0.8"><title>{esc(display_name(classes[c]))}</title></circle>')
    counts: dict[int, int] = {}
    for _, _, c in points:
        counts[c] = counts.get(c, 0) + 1
    top = sorted(counts, key=lambda c: (-counts[c], classes[c]))
    for i, c in enumerate(top[:legend_max]):
        y = 14 + i * 18
        name = display_name(classes[c])
        name = name if len(name) <= 22 else name[:21] + "\u2026"
        parts.append(f'<rect x="{plot_w + 14}" y="{y - 10}" width="11" height="11" rx="2" fill="{colours[c]}"/>'
                     f'<text x="{plot_w + 30}" y="{y}" font-size="12" fill="#3e4c59">{esc(name)} ({counts[c]})</text>')
    if len(top) > legend_max:
        parts.append(f'<text x="{plot_w + 14}" y="{14 + legend_max * 18}" font-size="12" fill="#7b8794">'
                     f"+ {len(top) - legend_max} more classes</text>")
    return (f'<svg role="img" aria-label="2-D projection of the memory by class" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
            f'font-family="system-ui,sans-serif">{"".join(parts)}</svg>')


QUALITY_SERIES = (("miou", "mIoU", "#2680c2"), ("segment_accuracy", "segment accuracy", "#3ebd93"))


def quality_lines(points: Sequence[Mapping], series: Sequence[tuple[str, str, str]] = QUALITY_SERIES,
                  width: int = 900, height: int = 190) -> str:
    """Lines of figures in [0, 1] across releases: `points` [{'version', <key>: value or None}],
    oldest first; one line per (key, label, colour) of `series`, a dot per value with its
    figure in the tooltip; '' when there are no points."""
    if not points:
        return ""
    left, top, bottom = 40, 24, 22
    width = min(width, left + 40 + 80 * len(points))
    plot_w, plot_h = width - left - 20, height - top - bottom
    step = plot_w / max(len(points) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (i * step if len(points) > 1 else plot_w / 2)
        return x, top + plot_h * (1 - max(0.0, min(1.0, float(v))))

    parts = [legend(width, 0, [(label, colour) for _, label, colour in series])]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#e4e7eb"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#7b8794">'
                     f"{tick:g}</text>")
    for i, p in enumerate(points):
        x, _ = xy(i, 0)
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" font-size="11" text-anchor="middle" fill="#1f2933">'
                     f'v{esc(p["version"])}</text>')
    for key, label, colour in series:
        dots = [(i, p[key]) for i, p in enumerate(points) if p.get(key) is not None]
        if len(dots) > 1:
            path = " ".join("{:.1f},{:.1f}".format(*xy(i, v)) for i, v in dots)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, v in dots:
            x, y = xy(i, v)
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}"><title>version '
                         f'{esc(points[i]["version"])}: {esc(label)} {float(v):.4f}</title></circle>')
    return (f'<svg role="img" aria-label="quality per release" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" '
            f'font-family="system-ui,sans-serif">{"".join(parts)}</svg>')
