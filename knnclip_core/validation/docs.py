"""Great Expectations Data Docs that keep every ingest batch and work offline.

Layout under the workspace's reports/data_docs/:
  index.html                                   every validation, newest first (plain HTML, no JS needed)
  validations.jsonl                            one line per validation: what the index lists
  validations/<dataset>/<batch_id>/<kind>.html GX's validation result page of that batch
  expectations/knnclip.<kind>.html             GX's page of the suite
  static/                                      local CSS/JS/fonts/images (see docs_assets.py)

Each batch renders only its own pages and appends its lines, so memory and time per batch do
not grow with the number of past batches (the index re-reads the small .jsonl).
"""
from __future__ import annotations

import datetime as dt
import html
import json
import logging
import re
from pathlib import Path

from .docs_assets import install_assets, localize, replace_file

logger = logging.getLogger(__name__)

MANIFEST = "validations.jsonl"


def run_name(dataset: str, batch_id: str, when: dt.datetime) -> str:
    """The GX run name of a batch's validation: dataset, batch id and UTC time."""
    return f"{dataset} batch {batch_id} {when.astimezone(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "dataset"


def _render(renderer, resource) -> str:
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView().render(renderer.render(resource), data_context_id=None, show_how_to_buttons=False)


def write_batch_docs(out_dir: Path, dataset: str, batch_id: str, results: dict, suites: dict) -> Path:
    """Render one batch: `results` kind -> (GX validation result, rows checked), `suites` kind ->
    ExpectationSuite. Writes the pages, appends to the manifest, rebuilds index.html; returns it."""
    from great_expectations.render.renderer import ExpectationSuitePageRenderer, ValidationResultsPageRenderer

    install_assets(out_dir)
    entries = []
    for kind, (result, rows) in results.items():
        rel = f"validations/{_slug(dataset)}/{_slug(batch_id)}/{kind}.html"
        _write(out_dir / rel, localize(_render(ValidationResultsPageRenderer(), result), depth=3))
        run_id = result.meta["run_id"]
        stats = result.statistics
        entries.append({"dataset": dataset, "batch_id": batch_id, "kind": kind, "suite": result.suite_name,
                        "run_name": run_id.run_name, "run_time": run_id.run_time.isoformat(),
                        "success": bool(result.success), "rows": int(rows),
                        "evaluated": stats.get("evaluated_expectations"),
                        "successful": stats.get("successful_expectations"), "page": rel})
    for suite in suites.values():
        _write(out_dir / "expectations" / f"{suite.name}.html", localize(_render(ExpectationSuitePageRenderer(), suite), depth=1))
    with open(out_dir / MANIFEST, "a", encoding="utf-8") as f:  # one write per batch: appends do not interleave
        f.write("".join(json.dumps(e) + "\n" for e in entries))
    index = out_dir / "index.html"
    _write(index, index_html(read_manifest(out_dir)))
    return index


def read_manifest(out_dir: Path) -> list[dict]:
    """Every validation recorded under `out_dir`, newest first; unreadable lines are skipped."""
    path = out_dir / MANIFEST
    entries = []
    if path.exists():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entries.append(json.loads(line))
            except ValueError:
                logger.warning("%s line %d is not JSON; the Data Docs index skips it", path, n)
    return sorted(entries, key=lambda e: str(e.get("run_time", "")), reverse=True)


def _write(path: Path, text: str) -> None:
    replace_file(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _row(e: dict) -> str:
    esc = lambda v: html.escape(str(v if v is not None else ""))  # noqa: E731
    ok = e.get("success")
    icon = ('<i class="bi bi-check-circle-fill text-success"></i> passed' if ok
            else '<i class="bi bi-x-circle-fill text-danger"></i> rows refused')
    page = esc(e.get("page", ""))
    return (f'<tr><td>{icon}</td><td>{esc(e.get("run_time", ""))[:19].replace("T", " ")}</td>'
            f'<td>{esc(e.get("dataset"))}</td><td><code>{esc(e.get("batch_id"))}</code></td>'
            f'<td><a href="expectations/{esc(e.get("suite"))}.html">{esc(e.get("suite"))}</a></td>'
            f'<td class="text-right">{esc(e.get("rows"))}</td>'
            f'<td class="text-right">{esc(e.get("successful"))} / {esc(e.get("evaluated"))}</td>'
            f'<td><a class="validation-link" href="{page}">{esc(e.get("run_name"))}</a></td></tr>')


def index_html(entries: list[dict]) -> str:
    """The Data Docs index: a table of every validation in `entries` and links to their suites' pages."""
    batches = len({(e.get("dataset"), e.get("batch_id")) for e in entries})
    suite_names = sorted({str(e.get("suite")) for e in entries})
    rows = "\n".join(_row(e) for e in entries) or '<tr><td colspan="8">No validation yet.</td></tr>'
    suites = "".join(f'<li><a href="expectations/{html.escape(n)}.html">{html.escape(n)}</a></li>' for n in suite_names)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8"><meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>knnclip Data Docs</title>
<link rel="stylesheet" href="static/vendor/css/bootstrap.min.css">
<link rel="stylesheet" href="static/vendor/css/font/bootstrap-icons.min.css">
<link rel="shortcut icon" href="static/images/favicon.ico" type="image/x-icon">
</head>
<body>
<nav class="navbar border-bottom">
  <a class="navbar-brand" href="index.html"><img src="static/images/logo-long.png" alt="Great Expectations" style="height: 40px"></a>
  <span class="navbar-text">knnclip ingest validation</span>
</nav>
<main class="container-fluid p-4">
  <h4>Validation results</h4>
  <p class="lead">{len(entries)} validations of {batches} ingest batches, newest first. Each batch's
  image and segment rows are checked by the suites below; refused rows are quarantined.</p>
  <table class="table table-sm table-hover" id="validations">
    <thead><tr><th>Status</th><th>Run time (UTC)</th><th>Dataset</th><th>Batch</th><th>Suite</th>
    <th class="text-right">Rows</th><th class="text-right">Expectations met</th><th>Run name</th></tr></thead>
    <tbody>
{rows}
    </tbody>
  </table>
  <h4>Expectation suites</h4>
  <ul>{suites}</ul>
</main>
</body>
</html>
"""
