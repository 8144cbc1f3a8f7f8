"""The releases page (`/releases`) and the diff view (`/releases/diff?a=1&b=2`)
(templates releases.html, diff.html, release_forms.html)."""
from __future__ import annotations

import logging
from typing import Optional

from .charts import column_bars, quality_lines
from .html import fmt_num, page, render

logger = logging.getLogger(__name__)

EMPTY_RELEASES = ("No releases yet. Curate a memory, then `knnclip publish` registers it "
                  "(alias staging) and `knnclip releases promote N --alias production` puts it in production.")
NO_QUALITY = ("No release has been evaluated yet: `knnclip eval DATASET --release N` records an evaluation "
              "run in MLflow (experiment knnclip-eval) that this page shows.")


def _fig(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _diff_choice(releases: list, a: Optional[str] = None, b: Optional[str] = None) -> dict:
    """What the diff form offers: the versions (oldest first) and the two chosen ones."""
    versions = sorted((r["version"] for r in releases))
    if len(versions) < 2:
        return {"versions": versions}
    return {"versions": versions, "a": a or str(versions[-2]), "b": b or str(versions[-1])}


def releases_page(data: dict, message: Optional[tuple[str, str]] = None) -> str:
    """The releases page: versions with their newest quality, charts of quality and of vectors
    across versions, alias histories, promote and rollback forms, the diff form; `message`
    (text, kind) of an action on top."""
    releases = data["releases"]
    aliases = data["aliases"]
    context: dict = {}
    if releases:
        history = data.get("quality_history") or {}
        # vectors_chart, quality_chart: Markup of svg.html (autoescaped), written into releases.html as is
        context = dict(
            tiles=[("versions", len(releases)), *((f"{a}", f"v{v}") for a, v in aliases.items()),
                   ("latest vectors", releases[0].get("vectors") or 0)],
            vectors_chart=column_bars([(f"v{r['version']}", float(r.get("vectors") or 0)) for r in reversed(releases)],
                                      what="vectors"),
            history=history, quality_chart=quality_lines(history["points"]) if history.get("points") else None,
            figs={r["version"]: (_fig((r.get("quality") or {}).get("miou")),
                                 _fig((r.get("quality") or {}).get("segment_accuracy"))) for r in releases},
            alias_names=list(dict.fromkeys(["production", "staging", *aliases])),
            diff_choice=_diff_choice(releases))
    hist = [(a, h, aliases.get(a), " \u2192 ".join(str(v) for v in h["stack"]) or "-", f"The alias {a!r} has never been moved.")
            for a, h in data["alias_history"].items()]
    body = render("releases.html", message=message, error=data.get("error"), releases=releases, data=data,
                  empty=EMPTY_RELEASES, no_quality=NO_QUALITY, hist=hist, **context)
    return page("Releases", "/releases", body)


def _change(label: str, pair: dict) -> list:
    delta = pair.get("delta")
    sign = "" if delta is None else (f"+{fmt_num(delta)}" if delta > 0 else fmt_num(delta))
    return [label, pair.get("a"), pair.get("b"), sign]


def diff_page(releases: list, diff: Optional[dict], a: Optional[str], b: Optional[str],
              error: Optional[str] = None) -> str:
    """The diff view: totals, classes added / removed / changed, embedder and index."""
    context: dict = {}
    if diff:
        context = dict(
            changes=[_change("vectors", diff["vectors"]), _change("classes", diff["classes"]),
                     ["index", diff["factory"]["a"], diff["factory"]["b"],
                      "" if diff["factory"]["a"] == diff["factory"]["b"] else "changed"]],
            classes=([("add", n, "added", "-", c, f"+{c}") for n, c in diff["added"].items()]
                     + [("del", n, "removed", c, "-", f"-{c}") for n, c in diff["removed"].items()]
                     + [("changed", n, "changed", c["a"], c["b"], f"{c['delta']:+d}") for n, c in diff["changed"].items()]),
            summary=[("classes added", len(diff["added"])), ("classes removed", len(diff["removed"])),
                     ("classes changed", len(diff["changed"])), ("unchanged", diff["unchanged_classes"])])
    body = render("diff.html", releases=releases, diff_choice=_diff_choice(releases, a, b), empty=EMPTY_RELEASES,
                  error=error, diff=diff, **context)
    title = f"Diff of releases {a} and {b}" if a and b else "Diff of two releases"
    return page(title, "/releases", body)
