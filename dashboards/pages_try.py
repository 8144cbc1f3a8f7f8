"""HTML of the "try it" page (`/try`): the upload form and, after a POST, the overlay and the
segment list."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from .html import Raw, esc, fmt_num, notice, page, table
from .pages_inspect import crop_img

logger = logging.getLogger(__name__)


def upload_form(aliases: Sequence[str], chosen: str, held: dict, versions: Sequence[int] = ()) -> str:
    """Form posting `image` and `alias` (an alias or a version number) to /try (multipart)."""
    opts = "".join(f'<option value="{esc(a)}"{" selected" if a == chosen else ""}>{esc(a)}'
                   f'{" (version " + str(held[a]) + ")" if a in held else " (no release)"}</option>'
                   for a in aliases)
    if versions:
        opts += '<optgroup label="versions">' + "".join(
            f'<option value="{v}"{" selected" if str(v) == chosen else ""}>version {v}</option>' for v in versions) \
            + "</optgroup>"
    return ('<form class="inline" method="post" action="/try" enctype="multipart/form-data">'
            '<label>Image <input type="file" name="image" accept="image/*" required></label>'
            f'<label>Release <select name="alias">{opts}</select></label>'
            '<button type="submit">Segment</button></form>')


def _swatch(colour: Optional[str]) -> str:
    return f'<span class="swatch" style="background:{esc(colour)}"></span>' if colour else \
        '<span class="swatch" style="background:#000"></span>'


def _neighbours(neighbours: list) -> str:
    """Crops of a segment's neighbours with their class and similarity."""
    if not neighbours:
        return '<span class="muted">none</span>'
    figs = [f'<figure>{crop_img(n.get("crop"), "segment " + str(n.get("segment_id")))}<figcaption>'
            f'{esc(n.get("class") or "?")} {fmt_num(n["similarity"], 3)}</figcaption></figure>' for n in neighbours]
    return f'<div class="crops">{"".join(figs)}</div>'


def result_html(res: dict, filename: str = "") -> str:
    """Overlay, classes found and the segment list of one `TryService.segment` answer."""
    rel = res["release"]
    head = (f'<h2>{esc(filename or "upload")}: {res["width"]}\u00d7{res["height"]} px, '
            f'{len(res["segments"])} segments</h2><div class="muted">release version {esc(rel["version"])} '
            f'({esc(rel.get("alias") or "chosen by version")}), {esc(rel["vocabulary_size"])} classes in its vocabulary, '
            f'embedder <span class="mono">{esc(rel["embedder_id"])}</span>'
            + (f', confidence threshold T {fmt_num(rel["confidence_threshold"], 3)} ({esc(rel.get("threshold_source"))})'
               if rel.get("confidence_threshold") is not None else "") + '</div>')
    total = max(1, res["width"] * res["height"])
    classes = table(["class", "pixels", "share"],
                    [[Raw(_swatch(c["colour"]) + esc(c["name"])), c["pixels"], f"{100 * c['pixels'] / total:.1f}%"]
                     for c in res["classes"]], numeric=(1, 2)) if res["classes"] else \
        notice("No segment got a class (all unknown).")
    segs = table(["segment", "class", "score", "retrieval confidence", "fused", "area", "top scores"],
                 [[s["id"], Raw(_swatch(s["colour"]) + esc(s["class"])), s["score"], s["confidence"],
                   "yes" if s["fused"] else "no", s["area"],
                   ", ".join(f"{k} {fmt_num(v, 3)}" for k, v in (s.get("top_scores") or {}).items())]
                  for s in res["segments"]], numeric=(0, 2, 3, 5))
    voters = table(["segment", "class", "nearest segments of the memory that voted (similarity)"],
                   [[s["id"], Raw(_swatch(s["colour"]) + esc(s["class"])), Raw(_neighbours(s.get("neighbours") or []))]
                    for s in res["segments"]], numeric=(0,))
    timings = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in res.get("timings", {}).items())
    return (f'<section class="card">{head}<div class="grid2" style="margin-top:12px">'
            f'<div><h3>Overlay</h3><img class="result" alt="colour overlay of the segmentation" src="{res["overlay"]}"></div>'
            f'<div><h3>Upload</h3><img class="result" alt="the uploaded image" src="{res["image"]}"></div></div>'
            f"<h3>Classes found</h3>{classes}"
            f'<h3>Segments</h3>{segs}<h3>Neighbours that voted</h3>{voters}'
            f'<div class="muted">{esc(timings)}</div></section>')


def try_page(aliases: Sequence[str], chosen: str, held: dict, result: Optional[dict] = None,
             error: Optional[str] = None, filename: str = "", versions: Sequence[int] = ()) -> str:
    """The whole page: an empty-state notice when no alias holds a release, the form, the result."""
    parts = []
    if not held:
        parts.append(notice("No release yet, so there is nothing to segment with: publish one with "
                            "`knnclip publish` and promote it with `knnclip releases promote N --alias production`."))
    elif chosen not in held and not chosen.isdigit():
        parts.append(notice(f"No release holds the alias {chosen!r} yet; choose another alias below."))
    parts.append(f'<section class="card"><h2>Segment an image</h2>'
                 f'<p class="muted">Upload a picture; it is segmented with the release the chosen alias points at, '
                 f"and the colour overlay and the segments with their classes and scores are shown.</p>"
                 f"{upload_form(aliases, chosen, held, versions)}</section>")
    if error:
        parts.append(notice(error, "error"))
    if result:
        parts.append(result_html(result, filename))
    return page("Try it", "/try", "".join(parts))
