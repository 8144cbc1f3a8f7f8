"""HTML of the releases page (`/releases`) and the diff view (`/releases/diff?a=1&b=2`)."""
from __future__ import annotations

import logging
from typing import Optional

from knnclip_core.classnames import display_name

from .charts import column_bars, quality_lines
from .html import Raw, esc, fmt_num, fmt_time, notice, page, pills, stats, table

logger = logging.getLogger(__name__)

EMPTY_RELEASES = ("No releases yet. Curate a memory, then `knnclip publish` registers it "
                  "(alias staging) and `knnclip releases promote N --alias production` puts it in production.")


def _fig(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _quality_cells(q: Optional[dict]) -> list:
    """mIoU, segment accuracy and 'dataset, when' of a release's newest evaluation run."""
    if not q:
        return ["-", "-", Raw('<span class="muted">not evaluated</span>')]
    return [_fig(q.get("miou")), _fig(q.get("segment_accuracy")),
            Raw(f'{esc(q.get("dataset"))} <span class="muted nowrap" title="MLflow run {esc(q.get("run_id"))}">'
                f'{esc(fmt_time(q.get("at")))}</span>')]


def _versions_table(releases: list) -> str:
    rows = []
    for r in releases:
        rows.append([Raw(f'<b>{esc(r["version"])}</b>'), Raw(pills(r["aliases"]) or '<span class="muted">-</span>'),
                     r.get("vectors"), r.get("classes"), r.get("factory") or "-", r.get("recall_at_10"),
                     *_quality_cells(r.get("quality")), r.get("backbone") or "-", fmt_time(r.get("created")),
                     Raw(f'<span class="mono">{esc(r.get("embedder_id") or "-")}</span>')])
    return table(["version", "aliases", "vectors", "classes", "factory", "recall@10", "mIoU", "seg acc",
                  "evaluated on", "backbone", "created", "embedder"], rows, numeric=(2, 3, 5, 6, 7))


def _quality_section(history: dict) -> str:
    """Chart of mIoU and segment accuracy across versions on one evaluation set (other sets listed below it)."""
    if not history.get("points"):
        return ("<h3>Quality across versions</h3>" + notice(
            "No release has been evaluated yet: `knnclip eval DATASET --release N` records an evaluation "
            "run in MLflow (experiment knnclip-eval) that this page shows."))
    others = "".join(f'<div class="muted">{esc(line)}</div>' for line in history.get("other_sets") or [])
    return (f'<h3>Quality across versions <span class="muted">(newest evaluation of each on '
            f'{esc(history.get("label") or history["dataset"])})</span></h3>{quality_lines(history["points"])}{others}')


def _history_table(alias: str, hist: dict, current: Optional[int]) -> str:
    title = f'<h3>{pills([alias])} now version {esc(current) if current is not None else "none"}</h3>'
    if not hist["log"]:
        return title + notice(f"The alias {alias!r} has never been moved.")
    rows = [[fmt_time(e.get("at")), e.get("action"), e.get("version"),
             e.get("previous") if e.get("previous") is not None else "-", e.get("by") or "-", e.get("note") or ""]
            for e in hist["log"]]
    stack = " \u2192 ".join(str(v) for v in hist["stack"]) or "-"
    return (title + table(["when", "action", "version", "previous", "by", "note"], rows, numeric=(2, 3))
            + f'<div class="muted">versions that held it, oldest first (rollback goes back along this): {esc(stack)}</div>')


def _diff_form(releases: list, a: Optional[str] = None, b: Optional[str] = None) -> str:
    versions = sorted((r["version"] for r in releases))
    if len(versions) < 2:
        return notice("A diff needs two releases; publish another one to compare.")
    a = a or str(versions[-2])
    b = b or str(versions[-1])

    def select(name: str, chosen: str) -> str:
        opts = "".join(f'<option value="{v}"{" selected" if str(v) == chosen else ""}>version {v}</option>'
                       for v in versions)
        return f'<select name="{name}">{opts}</select>'

    return (f'<form class="inline" method="get" action="/releases/diff">Compare {select("a", a)} with '
            f'{select("b", b)} <button type="submit">Show diff</button></form>')


def _actions_form(releases: list, aliases: dict) -> str:
    """Promote and rollback forms (POST, the worker token as a password field)."""
    versions = "".join(f'<option value="{r["version"]}">version {r["version"]}</option>' for r in releases)
    names = "".join(f'<option value="{esc(a)}">{esc(a)}</option>' for a in dict.fromkeys(["production", "staging", *aliases]))
    token = '<label>Worker token <input type="password" name="token" autocomplete="off" required></label>'
    return (f'<form class="inline" method="post" action="/releases/promote">Promote <select name="version">{versions}'
            f'</select> to <select name="alias">{names}</select> {token}<button type="submit">Promote</button></form>'
            f'<div class="muted">The same quality gate as <code>knnclip releases promote</code> decides; a refused '
            f'promotion changes nothing.</div><br>'
            f'<form class="inline" method="post" action="/releases/rollback">Roll back <select name="alias">{names}'
            f'</select> {token}<button type="submit">Roll back</button></form>')


def releases_page(data: dict, message: Optional[tuple[str, str]] = None) -> str:
    """The releases page: versions with their newest quality, charts of quality and of vectors
    across versions, alias histories, promote and rollback forms, the diff form; `message`
    (text, kind) of an action on top."""
    parts = [notice(*message)] if message else []
    if data.get("error"):
        parts.append(notice("The model registry cannot be read: " + data["error"], "error"))
    releases = data["releases"]
    aliases = data["aliases"]
    if not releases:
        parts.append(notice(EMPTY_RELEASES))
    else:
        tiles = stats([("versions", len(releases)),
                       *((f"{a}", f"v{v}") for a, v in aliases.items()),
                       ("latest vectors", releases[0].get("vectors") or 0)])
        chart = column_bars([(f"v{r['version']}", float(r.get("vectors") or 0)) for r in reversed(releases)],
                            what="vectors")
        parts.append(f'<section class="card"><h2>Registered versions of '
                     f'<span class="mono">{esc(data["model_name"])}</span></h2>{tiles}'
                     f'<div class="grid2"><div>{_quality_section(data.get("quality_history") or {})}</div>'
                     f"<div><h3>Vectors per version</h3>{chart}</div></div>{_versions_table(releases)}</section>")
    hist = "".join(_history_table(a, h, aliases.get(a)) for a, h in data["alias_history"].items())
    parts.append(f'<section class="card"><h2>Alias history (newest first)</h2>{hist}</section>')
    if releases:
        parts.append(f'<section class="card"><h2>Move an alias</h2>{_actions_form(releases, aliases)}</section>')
        parts.append(f'<section class="card"><h2>Compare two releases</h2>{_diff_form(releases)}</section>')
    return page("Releases", "/releases", "".join(parts))


def _change(label: str, pair: dict) -> list:
    delta = pair.get("delta")
    sign = "" if delta is None else (f"+{fmt_num(delta)}" if delta > 0 else fmt_num(delta))
    return [label, pair.get("a"), pair.get("b"), sign]


def diff_page(releases: list, diff: Optional[dict], a: Optional[str], b: Optional[str],
              error: Optional[str] = None) -> str:
    """The diff view: totals, classes added / removed / changed, embedder and index."""
    parts = [f'<section class="card">{_diff_form(releases, a, b) if releases else notice(EMPTY_RELEASES)}</section>']
    if error:
        parts.append(notice(error, "error"))
    if diff:
        totals = table(["", f"version {diff['a']}", f"version {diff['b']}", "change"],
                       [_change("vectors", diff["vectors"]), _change("classes", diff["classes"]),
                        ["index", diff["factory"]["a"], diff["factory"]["b"],
                         "" if diff["factory"]["a"] == diff["factory"]["b"] else "changed"],
                        ["embedder", Raw(f'<span class="mono">{esc(diff["embedder"]["a"])}</span>'),
                         Raw(f'<span class="mono">{esc(diff["embedder"]["b"])}</span>'),
                         "changed" if diff["embedder"]["changed"] else ""]], numeric=(1, 2))
        rows = ([[Raw(f'<span class="add">+ {esc(display_name(n))}</span>'), "added", "-", c, f"+{c}"]
                 for n, c in diff["added"].items()]
                + [[Raw(f'<span class="del">\u2212 {esc(display_name(n))}</span>'), "removed", c, "-", f"-{c}"]
                   for n, c in diff["removed"].items()]
                + [[f"~ {display_name(n)}", "changed", c["a"], c["b"], f"{c['delta']:+d}"]
                   for n, c in diff["changed"].items()])
        classes = (table(["class", "change", f"vectors in {diff['a']}", f"vectors in {diff['b']}", "delta"], rows,
                         numeric=(2, 3, 4)) if rows else notice("Same classes with the same vector counts."))
        summary = stats([("classes added", len(diff["added"])), ("classes removed", len(diff["removed"])),
                         ("classes changed", len(diff["changed"])), ("unchanged", diff["unchanged_classes"])])
        parts.append(f'<section class="card"><h2>Release {esc(diff["a"])} \u2192 {esc(diff["b"])}</h2>{summary}'
                     f"{totals}<h3>Classes</h3>{classes}</section>")
    title = f"Diff of releases {a} and {b}" if a and b else "Diff of two releases"
    return page(title, "/releases", "".join(parts))
