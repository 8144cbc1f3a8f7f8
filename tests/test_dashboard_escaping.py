"""Hostile names (a class, dataset, file, alias or release field holding markup) come back
escaped on every dashboard page that shows them: the dashboard's Jinja2 templates autoescape.
Each check fails if autoescape were off (the raw `<script>` / `<img` would be in the page)."""
from __future__ import annotations

import shutil
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = SCRIPT + IMG


def assert_escaped(html: str, where: str) -> None:
    """No hostile markup got through; its escaped form (as text) did."""
    assert "<script>" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html, where
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, where
    assert "&gt;&lt;img src=x onerror=alert(1)&gt;" in html, where
    assert html.count("&#34;&gt;&lt;img") + html.count("&quot;&gt;&lt;img") >= 1, where  # the quote as well
    assert HOSTILE in unescape(html), where  # shown, not dropped


def _pages() -> dict:
    """Every page rendered from data whose names are all HOSTILE."""
    from dashboards.html import error_page
    from dashboards.pages_memory import memory_page
    from dashboards.pages_quarantine import quarantine_page
    from dashboards.pages_releases import diff_page, releases_page
    from dashboards.pages_try import try_page

    per_class = {HOSTILE: {"rows": 3, "kept": 2, "duplicate": 1}}
    pair = {"id": HOSTILE, "class": HOSTILE, "crop": None, "partner": HOSTILE, "partner_class": HOSTILE}
    projection = {"points": [(0.0, 0.0, 0), (1.0, 1.0, 0)], "classes": [HOSTILE], "explained": (0.5, 0.2), "rows_read": 2}
    memory = {"embedder_id": HOSTILE, "table": HOSTILE, "rows": 3, "classes": 1, "counts": {"kept": 2, "duplicate": 1},
              "per_class": per_class, "latest_tag": HOSTILE, "latest_tag_version": 1,
              "runs": [{"run_id": 1, "status": HOSTILE, "lance_tag": HOSTILE, "counts": {}, "params": {"x": HOSTILE}}]}
    batch = {"id": HOSTILE, "dataset": HOSTILE, "source": HOSTILE, "format": HOSTILE, "status": "failed",
             "error": HOSTILE, "started": "2026-01-01T00:00:00", "images": 1, "segments": 1, "new_segments": 1,
             "classes": 1, "quarantined": 1, "quarantine_reasons": {HOSTILE: 1}}
    catalog = {"datasets": [{"name": HOSTILE, "created": "2026-01-01T00:00:00", "batches": 1, "images": 1,
                             "segments": 1}], "batches": [batch],
               "totals": {"datasets": 1, "batches": 1, "images": 1, "segments": 1, "quarantined": 1}}
    data = {"home": HOSTILE, "memories": [memory], "catalog": catalog, "errors": [HOSTILE],
            "forget_rules": [{"id": 1, "kind": "class", "value": HOSTILE, "reason": HOSTILE, "active": True,
                              "created": "2026-01-01T00:00:00"}]}
    inspection = {"pairs": {"conflict": [pair], "duplicate": [pair]}, "projection": projection}
    item = {"id": 1, "thumbnail": None, "file": HOSTILE, "segment": HOSTILE, "reason": HOSTILE, "message": HOSTILE,
            "batch": HOSTILE, "dataset": HOSTILE}
    quarantine = {"total": 1, "reasons": {HOSTILE: 1}, "items": [item], "page": 1, "pages": 1}
    release = {"version": 1, "aliases": [HOSTILE], "vectors": 3, "classes": 1, "factory": HOSTILE,
               "backbone": HOSTILE, "embedder_id": HOSTILE,
               "quality": {"miou": 0.5, "segment_accuracy": 0.5, "dataset": HOSTILE, "run_id": HOSTILE}}
    releases = {"releases": [release, {**release, "version": 2}], "aliases": {HOSTILE: 1}, "model_name": HOSTILE,
                "alias_history": {HOSTILE: {"log": [{"action": HOSTILE, "version": 1, "by": HOSTILE,
                                                     "note": HOSTILE}], "stack": [1]}},
                "quality_history": {"points": [{"version": 1, "miou": 0.5}], "label": HOSTILE, "other_sets": [HOSTILE]},
                "error": HOSTILE}
    diff = {"a": 1, "b": 2, "vectors": {"a": 1, "b": 2, "delta": 1}, "classes": {"a": 1, "b": 1, "delta": 0},
            "factory": {"a": HOSTILE, "b": HOSTILE}, "embedder": {"a": HOSTILE, "b": HOSTILE, "changed": False},
            "added": {HOSTILE: 1}, "removed": {HOSTILE + "2": 1}, "changed": {HOSTILE + "3": {"a": 1, "b": 2, "delta": 1}},
            "unchanged_classes": 0}
    neighbour = {"segment_id": HOSTILE, "similarity": 0.9, "class": HOSTILE, "crop": None}
    segment = {"id": 0, "class": HOSTILE, "colour": "#102030", "score": 0.5, "confidence": 0.5, "fused": False,
               "area": 4, "top_scores": {HOSTILE: 0.5}, "neighbours": [neighbour]}
    result = {"release": {"version": HOSTILE, "alias": HOSTILE, "vocabulary_size": 1, "embedder_id": HOSTILE,
                          "confidence_threshold": 0.5, "threshold_source": HOSTILE},
              "width": 2, "height": 2, "overlay": "data:,", "image": "data:,", "segments": [segment],
              "classes": [{"name": HOSTILE, "colour": "#102030", "pixels": 4}], "timings": {HOSTILE: 0.1}}
    return {
        "memory": memory_page(data, {"q": HOSTILE[:0], "page": 1}, {HOSTILE: inspection}),
        "memory filtered": memory_page(data, {"q": HOSTILE}, {}),
        "quarantine": quarantine_page(quarantine, [batch], HOSTILE, HOSTILE),
        "releases": releases_page(releases, (HOSTILE, "ok")),
        "diff": diff_page(releases["releases"], diff, HOSTILE, HOSTILE, HOSTILE),
        "try": try_page(["production", HOSTILE], HOSTILE, {"production": 1}, result, HOSTILE, filename=HOSTILE),
        "error": error_page(HOSTILE),
    }


@pytest.mark.parametrize("name", ["memory", "memory filtered", "quarantine", "releases", "diff", "try", "error"])
def test_hostile_values_come_back_escaped_on_each_page(name):
    assert_escaped(_pages()[name], name)


def test_hostile_names_in_a_real_workspace_come_back_escaped(tmp_path, monkeypatch):
    """A dataset, its classes and a (quarantined) file named with markup, ingested, embedded and
    curated for real: the memory and quarantine pages show them escaped; the JSON keeps them as they are."""
    from dashboards.app import create_app
    from knnclip_core.config import load_settings
    from knnclip_core.embed_stage import run_embed
    from knnclip_core.ingest import ingest_path
    from knnclip_core.memory.curate import curate
    from knnclip_core.sample_data import write_sample_dataset
    from knnclip_core.workspace import Workspace

    for var in ("MLFLOW_TRACKING_URI", "KNNCLIP_CONFIG", "KNNCLIP_CATALOG_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KNNCLIP_HOME", str(tmp_path / "ws"))
    settings = load_settings(home=str(tmp_path / "ws"))
    ws = Workspace.from_settings(settings).ensure()
    data = write_sample_dataset(tmp_path / "set", images=2, classes=2, seed=0)
    (data / "classes.txt").write_text(f"{SCRIPT}\n{IMG}\n")
    shutil.copy(sorted((data / "images").glob("*.png"))[0], data / "images" / f"{IMG}.png")  # no mask: quarantined
    report = ingest_path(settings, data, dataset=HOSTILE, progress=False)
    assert report.quarantined == 1
    run_embed(settings, backbone="classic", device="cpu", num_workers=0)
    curate(settings, ws, "classic")

    client = TestClient(create_app(settings))
    memory = client.get("/")
    assert memory.status_code == 200
    assert_escaped(memory.text, "/")
    assert f"<title>{_escaped(SCRIPT)}</title></circle>" in memory.text  # the class in the projection
    assert f"<tr><td>{_escaped(IMG)}</td>" in memory.text  # the class in the class table
    assert f"<td>{_escaped(HOSTILE)}</td>" in memory.text  # the dataset in the catalog
    quarantine = client.get("/quarantine")
    assert quarantine.status_code == 200
    assert_escaped(quarantine.text, "/quarantine")
    assert f'<span class="mono file">images/{_escaped(IMG)}.png</span>' in quarantine.text
    api = client.get("/api/memory").json()
    assert api["catalog"]["datasets"][0]["name"] == HOSTILE  # the JSON API is not HTML: names as they are
    assert Path(client.get("/api/quarantine").json()["items"][0]["file"]).name == f"{IMG}.png"


def _escaped(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))
