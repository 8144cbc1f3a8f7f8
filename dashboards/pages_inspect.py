"""What the memory page shows beside the counts: label conflicts and near-duplicates as pairs
of segment crops, and the 2-D projection of the memory coloured by class (template inspect.html)."""
from __future__ import annotations

from markupsafe import Markup

from knnclip_core.segment.render import palette

from .charts import scatter
from .html import render
from .tryit import colour_hex

TITLES = {"conflict": ("Label conflicts", "conflicts with", "near-identical segments labelled with different classes"),
          "duplicate": ("Near-duplicates", "duplicate of", "segments dropped as near-copies of a kept one")}


def inspect_html(inspection: dict) -> Markup:
    """Conflicts, duplicates and the projection of one memory (memory_data.inspect_memory)."""
    kinds = [(k, *TITLES[k], inspection["pairs"].get(k, [])) for k in ("conflict", "duplicate")]
    proj = inspection.get("projection")
    chart = None
    if proj and proj.get("points"):
        colours = [colour_hex(c) for c in palette(len(proj["classes"]))[:-1]]
        # Markup of svg.html (autoescaped), written into inspect.html as is
        chart = scatter(proj["points"], proj["classes"], colours)
    return render("inspect.html", error=inspection.get("error"), kinds=kinds, proj=proj, chart=chart)
