"""The dashboard (dashboards/): every page on an empty workspace (empty states, nothing
written), and on a small real workspace built with the library (ingest -> embed with the
`classic` backbone -> curate -> publish -> promote, twice; the first dataset has three bad
items that ingest quarantines, the second a near-copy and a relabelled copy of first-dataset
images, so curation finds duplicates and label conflicts) where the numbers on the pages are
checked against the catalog, the LanceDB table and the registry; /try segments an uploaded
PNG with an alias or a version and shows the neighbours that voted; promote and rollback
need the worker token. Browser tests are in test_dashboard_browser.py."""
from __future__ import annotations

import base64
from html import unescape
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image


from test_quarantine_cmd import add_bad_items
from test_registry import cli

PAGES = ("/", "/quarantine", "/releases", "/releases/diff", "/try")


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
                    "/try": "No release yet", "/quarantine": "Nothing is quarantined"}
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
        assert client.get("/api/quarantine").json()["total"] == 0
        assert client.get("/api/quarantine/1").status_code == 404
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
        bad = add_bad_items(data_a)
        _add_copies(data_a, data_b)
        kept, reports, evals = {}, [], {}
        for i, data in enumerate((data_a, data_b), start=1):
            ingest_path(settings, data, progress=False)
            emb = run_embed(settings, backbone="classic", device="cpu", num_workers=0)
            reports.append(curate(settings, ws, "classic"))
            pub = publish(settings, ws, backbone="classic")
            assert pub["version"] == i
            kept[i] = Counter(load_kept(ws, emb["embedder_id"], tag=reports[-1]["lance_tag"]).class_names)
            if i == 1:
                promote(open_registry(settings, ws), 1, alias="production", evaluator=None)
            evals[i] = cli(root / "ws", "eval", str(data_b), "--release", str(i))
        yield {"settings": settings, "ws": ws, "embedder_id": emb["embedder_id"], "kept": kept, "evals": evals,
               "reports": reports, "image": data_a / "images" / "scene_0_0000.png", "bad": bad, "data_a": data_a,
               "data_b": data_b}


def _add_copies(data_a: Path, data_b: Path) -> None:
    """Into data_b: a near-copy of data_a's first image (one pixel changed, same mask: near-duplicate
    segments) and of its second image with two labels swapped in the mask (label conflicts)."""
    first, second = sorted((data_a / "images").glob("scene_0_*.png"))[:2]
    for src, name, swap in ((first, "copy_near.png", False), (second, "copy_relabelled.png", True)):
        pixels = np.array(Image.open(src).convert("RGB"))
        pixels[0, 0] = 255 - pixels[0, 0]
        Image.fromarray(pixels).save(data_b / "images" / name)
        labels = np.array(Image.open(data_a / "masks" / src.name))
        if swap:
            a, b = np.unique(labels)[:2]
            labels = np.where(labels == a, b, np.where(labels == b, a, labels)).astype(labels.dtype)
        Image.fromarray(labels, mode="L").save(data_b / "masks" / name)


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
        m = re.search(f'<tr><td>{c}</td><td>(<svg class="bar".*?</svg>)</td>'
                      + "".join(f'<td class="num">{n}</td>' for n in cells) + "</tr>", html)
        assert m, c  # the per-class row with its inline bar
        for state in ("kept", "duplicate", "conflict"):
            if oracle.get((c, state)):
                assert f"<title>{oracle[(c, state)]} {state}</title>" in m.group(1)
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
    assert [b["images"] for b in cat["batches"]] == [5, 4]
    assert {d["name"]: d["images"] for d in cat["datasets"]} == {"set_a": 4, "set_b": 5}
    assert cat["totals"]["quarantined"] == 3 and "Ingest batches (most recent first)" in text


def test_releases_page_versions_and_alias_history(built, client):
    api = client.get("/api/releases").json()
    assert [r["version"] for r in api["releases"]] == [2, 1]
    assert [r["vectors"] for r in api["releases"]] == [sum(built["kept"][2].values()), sum(built["kept"][1].values())]
    assert [r["classes"] for r in api["releases"]] == [len(built["kept"][2]), len(built["kept"][1])]
    assert api["aliases"] == {"production": 1, "staging": 2}
    assert [e["action"] for e in api["alias_history"]["production"]["log"]] == ["promote"]
    assert [(e["action"], e["version"]) for e in api["alias_history"]["staging"]["log"]] == \
        [("publish", 2), ("publish", 1)]
    text = _text(client.get("/releases").text)
    assert "production now version 1" in text and "staging now version 2" in text
    assert "rollback goes back along this): 1 → 2" in text  # staging's stack
    for r in api["releases"]:
        assert f"{r['version']} {r['aliases'][0]} {r['vectors']} {r['classes']} {r['factory']}" in text


def test_releases_page_shows_quality_per_version(built, client):
    api = client.get("/api/releases").json()
    evals = built["evals"]  # the `knnclip eval --json` reports, one per version
    for r in api["releases"]:
        q, report = r["quality"], evals[r["version"]]
        assert q["run_id"] == report["mlflow_run"]["run_id"] and q["dataset"] == "set_b"
        assert q["miou"] == pytest.approx(report["miou"])
        assert q["segment_accuracy"] == pytest.approx(report["segment_accuracy"])
    hist = api["quality_history"]
    assert hist["dataset"] == "set_b"
    assert [(p["version"], p["miou"]) for p in hist["points"]] == [(v, pytest.approx(evals[v]["miou"])) for v in (1, 2)]
    html = client.get("/releases").text
    text = _text(html)
    assert "Quality across versions (newest evaluation of each on set_b [set " in text
    for r in api["releases"]:
        assert f"{r['quality']['miou']:.4f} {r['quality']['segment_accuracy']:.4f} set_b" in text
        assert f"<title>version {r['version']}: mIoU {r['quality']['miou']:.4f}</title>" in html


def test_diff_view_matches_the_kept_rows(built, client):
    a, b = built["kept"][1], built["kept"][2]
    expected_added = {c: n for c, n in b.items() if c not in a}
    expected_removed = {c: n for c, n in a.items() if c not in b}
    expected_changed = {c: {"a": a[c], "b": b[c], "delta": b[c] - a[c]} for c in a if c in b and a[c] != b[c]}
    d = client.get("/api/releases/diff?a=1&b=2").json()
    assert d["added"] == expected_added and d["removed"] == expected_removed and d["changed"] == expected_changed
    assert len(expected_added) == 1
    r = client.get("/releases/diff?a=production&b=staging")
    assert r.status_code == 200
    text = _text(r.text)
    [(name, n)] = expected_added.items()
    assert f"+ {name} added - {n} +{n}" in text
    for c, n in expected_removed.items():
        assert f"\u2212 {c} removed {n} - -{n}" in text
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
    assert {c["name"] for c in api["classes"]} <= vocabulary | {"unknown"}
    assert sum(c["pixels"] for c in api["classes"]) <= w * h
    for s in api["segments"]:
        assert s["class"] in vocabulary | {"unknown"} and 0.0 <= s["score"] <= 1.0
    bad = client.post("/try", files={"image": ("x.txt", b"GIF89a-broken", "image/gif")})
    assert bad.status_code == 400 and "not a readable image" in _text(bad.text)
    # a big photo is decoded at reduced scale (worker.max_side), as the worker does; a bomb never decoded
    big = io.BytesIO()
    Image.open(built["image"]).convert("RGB").resize((3 * 1024, 3 * 1024 * h // w)).save(big, format="PNG")
    api = client.post("/api/try", files={"image": ("big.png", big.getvalue(), "image/png")},
                      data={"alias": "production"}).json()
    assert (api["width"], api["height"]) == (1024, round(3 * 1024 * h // w / 3)) and api["scale"] == 1 / 3
    from benchmarks.fault_scenarios.common import bomb_png

    bomb = client.post("/try", files={"image": ("bomb.png", bomb_png(40000, 40000), "image/png")})
    assert bomb.status_code == 413 and "more than the limit" in _text(bomb.text)
    assert client.post("/try", files={"image": ("s.png", data, "image/png")},
                       data={"alias": "../etc"}).status_code == 400


# ---------------------------------------------------------------- inspecting data

def _png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_quarantine_page_lists_items_with_thumbnails_confined_to_the_root(built, client):
    from knnclip_core.catalog import Quarantine, session_scope
    from sqlmodel import select

    with session_scope(built["ws"].catalog_url) as s:
        rows = {q.reason: (q.id, q.item, q.message) for q in s.exec(select(Quarantine))}
    assert {r: item for r, (_, item, _) in rows.items()} == built["bad"]
    api = client.get("/api/quarantine").json()
    assert api["total"] == 3 and api["reasons"] == {r: 1 for r in built["bad"]}
    assert {q["id"]: q["message"] for q in api["items"]} == {i: m for i, _, m in rows.values()}
    r = client.get("/quarantine")
    assert r.status_code == 200
    text = _text(r.text)
    for reason, (item_id, item, message) in rows.items():
        assert f"{item} (whole image) {reason} {message}" in text
        assert f'<tr><td class="num">{item_id}</td>' in r.text
    thumbs = re.findall(r'<img class="crop" alt="([^"]+)" title="[^"]*" src="(data:image/png;base64,[^"]+)"', r.text)
    # only the image without a mask gets a thumbnail: the truncated one does not decode and the
    # symlink leaves the dataset root (its target is a good PNG that must not be opened)
    assert [alt for alt, _ in thumbs] == [built["bad"]["missing_mask"]]
    thumb = _png(thumbs[0][1])
    assert max(thumb.size) <= 160
    expected = Image.open(built["data_a"] / built["bad"]["missing_mask"]).convert("RGB")
    expected.thumbnail((160, 160))
    assert np.array_equal(np.asarray(thumb.convert("RGB")), np.asarray(expected))
    assert text.count("no preview") == 2
    only = _text(client.get("/quarantine?reason=truncated_image").text)
    assert built["bad"]["truncated_image"] in only and built["bad"]["missing_mask"] not in only
    one = client.get(f"/api/quarantine/{rows['path_outside_root'][0]}").json()
    assert one["file"] == built["bad"]["path_outside_root"] and one["reason"] == "path_outside_root"
    assert client.get("/api/quarantine/424242").status_code == 404


def test_conflicts_and_duplicates_are_shown_with_crops(built, client):
    from knnclip_core.memory.table import MemoryTable
    from dashboards.memory_data import inspect_memory

    mt = MemoryTable.open(built["ws"].memory_dir, built["embedder_id"], create=False)
    rows = mt.table.to_arrow().select(["id", "state", "state_reason"]).to_pylist()
    oracle = {s: {r["id"]: r["state_reason"] for r in rows if r["state"] == s} for s in ("conflict", "duplicate")}
    assert oracle["conflict"] and oracle["duplicate"], "the fixture must produce both"
    got = inspect_memory(built["ws"], built["embedder_id"], built["settings"].ingest.max_pixels)
    assert got["error"] is None
    html = client.get("/").text
    for state, pairs in got["pairs"].items():
        assert {p["id"] for p in pairs} == set(oracle[state])
        for p in pairs:
            assert oracle[state][p["id"]].split(":", 1)[1].startswith(p["partner"])
            assert p["crop"] and p["partner_crop"], "both segments' images are readable"
            assert max(_png(p["crop"]).size) <= 96
            assert p["crop"] in html and p["id"] in html
    assert "Label conflicts" in _text(html) and "Near-duplicates" in _text(html)


def test_projection_is_the_pca_of_the_memory(built, client):
    from knnclip_core.memory.table import MemoryTable
    from dashboards.memory_data import projection

    mt = MemoryTable.open(built["ws"].memory_dir, built["embedder_id"], create=False)
    tab = mt.table.to_arrow()
    vectors = np.stack(tab.column("vector").to_numpy(zero_copy_only=False)).astype(np.float64)
    eig = np.sort(np.linalg.eigvalsh(np.cov(vectors.T)))[::-1]
    proj = projection(built["ws"], built["embedder_id"])
    assert len(proj["points"]) == tab.num_rows  # fewer rows than the sample size: all of them
    assert proj["classes"] == sorted(set(tab.column("class_name").to_pylist()))
    assert np.allclose(proj["explained"], eig[:2] / eig.sum(), atol=1e-3)
    xy = np.array([(x, y) for x, y, _ in proj["points"]])
    assert np.allclose(np.var(xy, axis=0, ddof=1), eig[:2], rtol=1e-4)
    html = client.get("/").text
    assert html.count("<circle ") == tab.num_rows and "2-D projection of the memory by class" in html


def test_class_table_is_compact_for_hundreds_of_classes():
    from dashboards.pages_memory import memory_card

    per_class = {f"class {i:03d}": {"rows": 1000 - i, "kept": 1000 - i} for i in range(300)}
    m = {"embedder_id": "e", "table": "t", "rows": 1, "classes": 300, "counts": {"kept": 1}, "per_class": per_class}
    first = memory_card(m, {"page": 1})
    assert first.count("<tr><td>class ") == 50 and "class 000" in first and "class 050" not in first
    assert "300 classes, page 1 of 6" in _text(first) and 'href="/?q=&amp;page=2"' in first
    last = memory_card(m, {"page": 6})
    assert last.count("<tr><td>class ") == 50 and "class 299" in last
    found = memory_card(m, {"q": "class 12"})
    assert found.count("<tr><td>class ") == 10 and "10 of 300 classes" in _text(found)  # class 120..129
    assert "<svg role=\"img\" aria-label=\"rows per class" not in first  # no chart repeating the table
    assert len(first) < 60_000


def test_try_with_a_version_shows_the_neighbours_that_voted(built, client):
    from knnclip_core.catalog.queries import segment_sources

    page = client.get("/try").text
    assert '<option value="1">version 1</option>' in page and '<option value="2">version 2</option>' in page
    data = built["image"].read_bytes()
    api = client.post("/api/try", files={"image": ("scene.png", data, "image/png")}, data={"alias": "2"}).json()
    assert api["release"]["version"] == "2"
    voted = [n for s in api["segments"] for n in s["neighbours"]]
    assert voted, "the JSON carries the neighbours"
    known = segment_sources(built["ws"].catalog_url, [n["segment_id"] for n in voted])
    for n in voted:
        assert n["class"] == known[n["segment_id"]]["class"] and n["crop"]
    r = client.post("/try", files={"image": ("scene.png", data, "image/png")}, data={"alias": "2"})
    assert r.status_code == 200 and "release version 2" in _text(r.text)
    assert "Neighbours that voted" in r.text and voted[0]["crop"] in r.text
    missing = client.post("/try", files={"image": ("scene.png", data, "image/png")}, data={"alias": "9"})
    assert missing.status_code == 404 and "there is no release version 9" in _text(missing.text)


# ---------------------------------------------------------------- promote and rollback (moves aliases: last)

def test_promote_and_rollback_need_the_worker_token(built):
    from dashboards.app import create_app
    from registry.aliases import read_history
    from registry.store import open_registry

    settings = built["settings"]
    ctx = open_registry(settings, built["ws"])
    assert ctx.aliases() == {"production": 1, "staging": 2}
    off = TestClient(create_app(settings))
    r = off.post("/api/releases/promote", data={"version": "2", "alias": "production"},
                 headers={"Authorization": "Bearer anything"})
    assert r.status_code == 403 and "no worker token is set" in r.json()["detail"]

    guarded = TestClient(create_app(settings.model_copy(update={"worker_token": "s3cret"})))
    for headers, form in (({}, {}), ({"Authorization": "Bearer wrong"}, {}), ({}, {"token": "wrong"})):
        r = guarded.post("/releases/promote", data={"version": "2", "alias": "production", **form}, headers=headers)
        assert r.status_code == 401 and "missing or wrong bearer token" in _text(r.text)
    assert ctx.aliases() == {"production": 1, "staging": 2}, "a refused request changes nothing"
    r = guarded.post("/api/releases/promote", data={"version": "2", "alias": "latest"},
                     headers={"Authorization": "Bearer s3cret"})  # registry.store.check_alias's rule, up front
    assert r.status_code == 400 and "not a valid alias name" in r.json()["detail"], r.text

    r = guarded.post("/api/releases/promote", data={"version": "2", "alias": "production"},
                     headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 409 and "no quality-gate evaluation" in r.json()["detail"], r.text  # no gate configured
    assert "publish.gate_eval_path" in r.json()["detail"] and ctx.aliases()["production"] == 1
    gate = settings.publish.model_copy(update={"gate_eval_path": str(built["data_b"])})
    guarded = TestClient(create_app(settings.model_copy(update={"worker_token": "s3cret", "publish": gate})))
    r = guarded.post("/api/releases/promote", data={"version": "2", "alias": "production"},
                     headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200, r.text
    assert ctx.aliases()["production"] == 2 and r.json()["gate"]["status"]
    assert read_history(ctx, "production")["log"][-1]["action"] == "promote"
    r = guarded.post("/releases/rollback", data={"alias": "production", "token": "s3cret"})
    assert r.status_code == 200 and "alias production rolled back to version 1 (was 2)" in _text(r.text)
    assert ctx.aliases() == {"production": 1, "staging": 2}
    r = guarded.post("/api/releases/promote", data={"version": "7", "alias": "production", "token": "s3cret"})
    assert r.status_code == 409 and ctx.aliases()["production"] == 1
    assert '<form class="inline" method="post" action="/releases/promote">' in guarded.get("/releases").text
