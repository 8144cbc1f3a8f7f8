"""The dashboard (dashboards/): every page on an empty workspace (empty states, nothing
written), and on a small real workspace built with the library (ingest -> embed with the
`classic` backbone -> curate -> publish -> promote, twice) where the numbers on the pages are
checked against the LanceDB table and the registry; /try segments an uploaded PNG; headless
Chromium screenshots of each page when /usr/bin/chromium exists."""
from __future__ import annotations

import base64
from html import unescape
import io
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from knnclip_core.net import free_port

PAGES = ("/", "/releases", "/releases/diff", "/try")
CHROMIUM = Path("/usr/bin/chromium")


def _settings(home: Path, mp: pytest.MonkeyPatch):
    from knnclip_core.config import load_settings

    for var in ("MLFLOW_TRACKING_URI", "KNNCLIP_CONFIG", "KNNCLIP_CATALOG_URL"):
        mp.delenv(var, raising=False)
    mp.setenv("KNNCLIP_HOME", str(home))
    return load_settings(home=str(home))


def _text(html: str) -> str:
    """Visible text of a page, tags dropped, whitespace collapsed."""
    html = re.sub(r"<style>.*?</style>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


# ---------------------------------------------------------------- empty workspace

def test_empty_workspace_pages_show_empty_states(tmp_path):
    from dashboards.app import create_app

    home = tmp_path / "empty"
    with pytest.MonkeyPatch.context() as mp:
        client = TestClient(create_app(_settings(home, mp)))
        expected = {"/": "No memory yet", "/releases": "No releases yet", "/releases/diff": "No releases yet",
                    "/try": "No release yet"}
        for path in PAGES:
            r = client.get(path)
            assert r.status_code == 200, path
            assert r.headers["content-type"].startswith("text/html")
            assert expected[path] in _text(r.text), path
            assert 'href="/releases"' in r.text and 'href="/try"' in r.text  # nav bar
        assert "The catalog is empty" in _text(client.get("/").text)
        mem = client.get("/api/memory").json()
        assert mem["memories"] == [] and mem["catalog"]["batches"] == [] and mem["errors"] == []
        rel = client.get("/api/releases").json()
        assert rel["releases"] == [] and rel["aliases"] == {} and rel["error"] is None
        assert client.get("/releases/diff?a=1&b=2").status_code == 404
        assert client.get("/api/releases/diff?a=1&b=2").status_code == 404

        r = client.post("/try", files={"image": ("x.png", _tiny_png(), "image/png")}, data={"alias": "production"})
        assert r.status_code == 404 and "no release holds the alias 'production'" in _text(r.text)
        r = client.post("/try", files={"image": ("notes.txt", b"not an image", "text/plain")})
        assert r.status_code == 400 and "not a readable image" in _text(r.text)
        r = client.post("/try", data={"alias": "production"})
        assert r.status_code == 400 and "choose an image file" in _text(r.text)
    assert not home.exists(), "looking at an empty workspace must not create it"


def _tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- real workspace

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A workspace with two releases: v1 (3 classes) in production, v2 (+1 class) in staging."""
    from knnclip_core.embed_stage import run_embed
    from knnclip_core.ingest import ingest_path
    from knnclip_core.memory.curate import curate
    from knnclip_core.memory.published import load_kept
    from knnclip_core.sample_data import write_sample_dataset
    from knnclip_core.workspace import Workspace

    from registry.publish import publish
    from registry.releases import promote
    from registry.store import open_registry

    root = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as mp:
        settings = _settings(root / "ws", mp)
        ws = Workspace.from_settings(settings).ensure()
        data_a = write_sample_dataset(root / "set_a", images=4, classes=3, seed=0)
        data_b = write_sample_dataset(root / "set_b", images=3, classes=4, seed=1)
        kept, reports = {}, []
        for i, data in enumerate((data_a, data_b), start=1):
            ingest_path(settings, data, progress=False)
            emb = run_embed(settings, backbone="classic", device="cpu", num_workers=0)
            reports.append(curate(settings, ws, "classic"))
            pub = publish(settings, ws, backbone="classic")
            assert pub["version"] == i
            kept[i] = Counter(load_kept(ws, emb["embedder_id"], tag=reports[-1]["lance_tag"]).class_names)
            if i == 1:
                promote(open_registry(settings, ws), 1, alias="production", evaluator=None)
        yield {"settings": settings, "ws": ws, "embedder_id": emb["embedder_id"], "kept": kept,
               "reports": reports, "image": data_a / "images" / "scene_0_0000.png"}


@pytest.fixture(scope="module")
def client(built):
    from dashboards.app import create_app

    return TestClient(create_app(built["settings"]))


def test_memory_page_shows_the_table_counts(built, client):
    from knnclip_core.memory.table import MemoryTable

    mt = MemoryTable.open(built["ws"].memory_dir, built["embedder_id"], create=False)
    oracle = Counter(zip(mt.column("class_name"), mt.column("state")))  # (class, state) -> rows
    classes = sorted({c for c, _ in oracle})
    assert len(classes) == 4

    api = client.get("/api/memory").json()
    [mem] = api["memories"]
    for c in classes:
        assert mem["per_class"][c]["rows"] == sum(n for (k, _), n in oracle.items() if k == c)
    html = client.get("/").text
    for c in classes:  # the per-class table row, exactly
        cells = [sum(n for (k, _), n in oracle.items() if k == c)]
        cells += [oracle.get((c, s), 0) for s in ("kept", "duplicate", "conflict", "over_budget", "forgotten")]
        row = f"<tr><td>{c}</td>" + "".join(f'<td class="num">{n}</td>' for n in cells) + "</tr>"
        assert row in html, c
        assert f"<title>{c}: {oracle[(c, 'kept')]} kept</title>" in html  # the SVG bar
    text = _text(html)
    assert f"{sum(oracle.values())} rows" in text
    dup = sum(n for (_, s), n in oracle.items() if s == "duplicate")
    assert f"{dup} duplicates" in text
    # curation history: both runs, newest first, with their LanceDB tags and parameters
    runs = mem["runs"]
    assert [r["lance_tag"] for r in runs] == [r["lance_tag"] for r in reversed(built["reports"])]
    assert all(r["lance_tag"] in text for r in runs) and "dedup_threshold=" in text
    assert text.index(runs[0]["lance_tag"]) < text.index(runs[1]["lance_tag"])
    # catalog: two batches, most recent first, with image counts
    cat = api["catalog"]
    assert [b["dataset"] for b in cat["batches"]] == ["set_b", "set_a"]
    assert [b["images"] for b in cat["batches"]] == [3, 4]
    assert {d["name"]: d["images"] for d in cat["datasets"]} == {"set_a": 4, "set_b": 3}
    assert cat["totals"]["quarantined"] == 0 and "Ingest batches (most recent first)" in text


def test_releases_page_versions_and_alias_history(built, client):
    api = client.get("/api/releases").json()
    assert [r["version"] for r in api["releases"]] == [2, 1]
    assert [r["vectors"] for r in api["releases"]] == [sum(built["kept"][2].values()), sum(built["kept"][1].values())]
    assert [r["classes"] for r in api["releases"]] == [4, 3]
    assert api["aliases"] == {"production": 1, "staging": 2}
    assert [e["action"] for e in api["alias_history"]["production"]["log"]] == ["promote"]
    assert [(e["action"], e["version"]) for e in api["alias_history"]["staging"]["log"]] == \
        [("publish", 2), ("publish", 1)]
    text = _text(client.get("/releases").text)
    assert "production now version 1" in text and "staging now version 2" in text
    assert "rollback goes back along this): 1 → 2" in text  # staging's stack
    for r in api["releases"]:
        assert f"{r['version']} {r['aliases'][0]} {r['vectors']} {r['classes']} {r['factory']}" in text


def test_diff_view_matches_the_kept_rows(built, client):
    a, b = built["kept"][1], built["kept"][2]
    expected_added = {c: n for c, n in b.items() if c not in a}
    expected_changed = {c: {"a": a[c], "b": b[c], "delta": b[c] - a[c]} for c in a if c in b and a[c] != b[c]}
    d = client.get("/api/releases/diff?a=1&b=2").json()
    assert d["added"] == expected_added and d["removed"] == {} and d["changed"] == expected_changed
    assert len(expected_added) == 1
    r = client.get("/releases/diff?a=production&b=staging")
    assert r.status_code == 200
    text = _text(r.text)
    [(name, n)] = expected_added.items()
    assert f"+ {name} added - {n} +{n}" in text
    for c, ch in expected_changed.items():
        assert f"~ {c} changed {ch['a']} {ch['b']} {ch['delta']:+d}" in text
    assert client.get("/releases/diff?a=1&b=7").status_code == 404


def test_try_segments_an_upload(built, client):
    data = built["image"].read_bytes()
    w, h = Image.open(built["image"]).size
    r = client.post("/try", files={"image": ("scene.png", data, "image/png")}, data={"alias": "production"})
    assert r.status_code == 200
    m = re.search(r'alt="colour overlay of the segmentation" src="data:image/png;base64,([^"]+)"', r.text)
    assert m, "no inline overlay"
    overlay = Image.open(io.BytesIO(base64.b64decode(m.group(1))))
    assert overlay.size == (w, h)
    assert "release version 1 (production)" in _text(r.text)

    api = client.post("/api/try", files={"image": ("scene.png", data, "image/png")}, data={"alias": "staging"}).json()
    assert api["release"]["version"] == "2" and api["segments"]
    vocabulary = set(built["kept"][2])
    assert {c["name"] for c in api["classes"]} <= vocabulary
    assert sum(c["pixels"] for c in api["classes"]) <= w * h
    for s in api["segments"]:
        assert s["class"] in vocabulary | {"unknown"} and 0.0 <= s["score"] <= 1.0
    bad = client.post("/try", files={"image": ("x.txt", b"GIF89a-broken", "image/gif")})
    assert bad.status_code == 400 and "not a readable image" in _text(bad.text)
    assert client.post("/try", files={"image": ("s.png", data, "image/png")},
                       data={"alias": "../etc"}).status_code == 400


# ---------------------------------------------------------------- browser

@pytest.mark.slow
def test_pages_render_in_headless_chromium(built, tmp_path):
    if not CHROMIUM.exists():
        from conftest import require_or_skip

        require_or_skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    import uvicorn

    from dashboards.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(built["settings"]), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        for i, path in enumerate(("/", "/releases", "/releases/diff?a=1&b=2", "/try")):
            shot = tmp_path / f"page{i}.png"
            profile = tmp_path / f"profile{i}"
            subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,900",
                            f"http://127.0.0.1:{port}{path}"],
                           check=False, capture_output=True, timeout=60)
            shutil.rmtree(profile, ignore_errors=True)
            assert shot.is_file(), f"no screenshot of {path}"
            pixels = np.asarray(Image.open(shot).convert("RGB"))
            assert pixels.shape[:2] == (900, 1200)
            colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
            assert len(colours) > 20 and pixels.std() > 10, f"{path} looks blank"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
