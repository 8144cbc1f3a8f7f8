"""The "try it" page (`/try`): the upload form and, after a POST, the overlay and the segment
list (template try.html)."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

from markupsafe import Markup

from .html import page, render

logger = logging.getLogger(__name__)

NO_RELEASE = ("No release yet, so there is nothing to segment with: publish one with "
              "`knnclip publish` and promote it with `knnclip releases promote N --alias production`.")


def result_html(res: dict, filename: str = "") -> Markup:
    """Overlay, classes found and the segment list of one `TryService.segment` answer."""
    timings = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in res.get("timings", {}).items())
    return render("try_result.html", res=res, rel=res["release"], filename=filename,
                  total=max(1, res["width"] * res["height"]), timings=timings)


def try_page(aliases: Sequence[str], chosen: str, held: dict, result: Optional[dict] = None,
             error: Optional[str] = None, filename: str = "", versions: Sequence[int] = ()) -> str:
    """The whole page: an empty-state notice when no alias holds a release, the form, the result."""
    missing = f"No release holds the alias {chosen!r} yet; choose another alias below."
    # result: Markup of try_result.html (autoescaped), written into try.html as is
    body = render("try.html", aliases=aliases, chosen=chosen, held=held, versions=versions, error=error,
                  no_release=NO_RELEASE, missing=missing, result=result_html(result, filename) if result else None)
    return page("Try it", "/try", body)
