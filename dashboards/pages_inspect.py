"""HTML of what the memory page shows beside the counts: label conflicts and near-duplicates
as pairs of segment crops, and the 2-D projection of the memory coloured by class."""
from __future__ import annotations

from typing import Optional

from knnclip_core.classnames import display_name
from knnclip_core.segment.render import palette

from .charts import scatter
from .html import Raw, esc, notice, table
from .tryit import colour_hex

TITLES = {"conflict": ("Label conflicts", "conflicts with", "near-identical segments labelled with different classes"),
          "duplicate": ("Near-duplicates", "duplicate of", "segments dropped as near-copies of a kept one")}


def crop_img(uri: Optional[str], label: str) -> str:
    """An <img> of a crop data URI, or a 'no preview' mark when the image could not be read."""
    if not uri:
        return f'<span class="noimg" title="{esc(label)}">no preview</span>'
    return f'<img class="crop" alt="{esc(label)}" title="{esc(label)}" src="{uri}">'


def pairs_html(kind: str, pairs: list) -> str:
    """The pairs of one kind as a table: crop and class of each side, the segment ids."""
    title, verb, what = TITLES[kind]
    if not pairs:
        return f"<h3>{title}</h3>" + notice(f"No {kind}s in this memory.")
    rows = [[Raw(crop_img(p.get("crop"), f"segment {p['id']}")), display_name(p["class"]), verb,
             Raw(crop_img(p.get("partner_crop"), f"segment {p.get('partner')}")),
             display_name(p.get("partner_class") or "-"),
             Raw(f'<span class="mono">{esc(p["id"])}<br>{esc(p.get("partner") or "-")}</span>')] for p in pairs]
    return (f'<h3>{title} <span class="muted">({esc(what)}; first {len(pairs)} shown)</span></h3>'
            + table(["segment", "class", "", "other segment", "its class", "ids"], rows))


def projection_html(proj: Optional[dict]) -> str:
    """The projection scatter with how it was made, or a notice when there are too few rows."""
    if not proj or not proj.get("points"):
        return "<h3>2-D projection</h3>" + notice("Too few rows to project.")
    colours = [colour_hex(c) for c in palette(len(proj["classes"]))[:-1]]
    pc1, pc2 = proj["explained"]
    return ("<h3>2-D projection of the memory by class</h3>"
            f'<div class="muted">PCA of {len(proj["points"])} vectors sampled from the first {proj["rows_read"]} '
            f"rows; the two axes hold {100 * pc1:.1f}% and {100 * pc2:.1f}% of the variance.</div>"
            + scatter(proj["points"], proj["classes"], colours))


def inspect_html(inspection: dict) -> str:
    """Conflicts, duplicates and the projection of one memory (memory_data.inspect_memory)."""
    parts = [notice("Conflicts or projection unreadable: " + inspection["error"], "error")] \
        if inspection.get("error") else []
    parts += [pairs_html(k, inspection["pairs"].get(k, [])) for k in ("conflict", "duplicate")]
    parts.append(projection_html(inspection.get("projection")))
    return "".join(parts)
