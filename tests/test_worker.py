"""The HTTP worker: API with and without a token, limits, metrics, a tampered release not
swapped in, and a swap under concurrent requests on loopback (real uvicorn)."""
import base64
import io
import os
import threading
import time

import numpy as np
import pytest
from PIL import Image

from knnclip_core.index import build_snapshot
from knnclip_core.net import free_port
from knnclip_core.segment.release import EmbedderCache, LocalSnapshotSource
from knnclip_core.segment.segmenter import SegmentParams
from knnclip_core.serving.service import create_app

H, W = 48, 64


def blocks_image(seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W, 3), np.uint8)
    img[:, : W // 2] = [200, 40, 40]
    img[: H // 2, W // 2:] = [40, 200, 40]
    img[H // 2:, W // 2:] = [40, 40, 200]
    return np.clip(img.astype(int) + rng.integers(0, 12, img.shape), 0, 255).astype(np.uint8)


def png(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def embedders():
    return EmbedderCache("cpu")


def make_snapshot(root, name, embedders, classes=("red", "green", "blue")):
    """A real snapshot of the three blocks (plus extra random rows for extra classes)."""
    emb = embedders.get("classic")
    blocks_image()
    masks = [np.zeros((H, W), bool) for _ in range(3)]
    masks[0][:, : W // 2] = True
    masks[1][: H // 2, W // 2:] = True
    masks[2][H // 2:, W // 2:] = True
    xb = np.concatenate([emb.embed_masks(blocks_image(s), masks) for s in range(3)])
    names = list(classes[:3]) * 3
    for extra in classes[3:]:
        v = np.random.default_rng(len(names)).standard_normal((1, emb.dim)).astype(np.float32)
        xb = np.vstack([xb, v / np.linalg.norm(v)])
        names.append(extra)
    out = root / name
    build_snapshot(out, xb, [f"{name}-{i}" for i in range(len(xb))], names, emb.id,
                   lineage={"backbone": "classic"}, factory="Flat")
    return out


def point(link, target):
    """Move the local 'alias' atomically."""
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)


@pytest.fixture
def releases(tmp_path, embedders):
    v1 = make_snapshot(tmp_path, "v1", embedders)
    link = tmp_path / "production"
    point(link, v1)
    return tmp_path, link


def app_for(settings, link, embedders, **kw):
    source = LocalSnapshotSource(link, SegmentParams.from_settings(settings), embedders, alias="production")
    return create_app(source, settings, **kw)


def wait_ready(client, headers=None, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError("worker never became ready: " + client.get("/release", headers=headers).text)


def test_api_without_token(settings, releases, embedders):
    from fastapi.testclient import TestClient

    _, link = releases
    with TestClient(app_for(settings, link, embedders)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        wait_ready(client)
        rel = client.get("/release").json()
        assert rel["version"] == "v1" and rel["alias"] == "production" and rel["vocabulary_size"] == 3
        assert rel["last_reload_error"] is None
        r = client.post("/segment", files={"image": ("x.png", png(blocks_image()), "image/png")},
                        params={"overlay": "true", "label_map": "true"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["release"]["version"] == "v1" and (body["width"], body["height"]) == (W, H)
        assert {s["class"] for s in body["segments"]} == {"red", "green", "blue"}  # the three blocks, none unknown
        assert body["segments"] and body["segments"][0]["provenance"][0]["segment_id"].startswith("v1-")
        overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["overlay_png"]))))
        labels = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["label_map_png"]))))
        assert labels.shape == (H, W) and overlay.shape == (H, W, 3)
        # the overlay is the colour blend plus the legend of the classes found, as the CLI writes it
        from knnclip_core.segment.render import UNKNOWN_VALUE_U8, legend_overlay, overlay_image

        label_map = np.where(labels == UNKNOWN_VALUE_U8, -1, labels.astype(np.int64))
        assert np.array_equal(overlay, np.asarray(legend_overlay(blocks_image(), label_map, body["classes"])))
        assert not np.array_equal(overlay, np.asarray(overlay_image(blocks_image(), label_map, len(body["classes"]))))
        r = client.post("/segment", files={"image": ("x.png", png(blocks_image()), "image/png")},
                        params={"format": "png"})
        assert r.headers["content-type"] == "image/png" and r.headers["x-knnclip-release"] == "v1"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), overlay)
        assert client.post("/segment", files={"image": ("x.png", b"not an image", "image/png")}).status_code == 400
        metrics = client.get("/metrics").text
        assert 'knnclip_worker_release_info{alias="production"' in metrics and 'version="v1"' in metrics
        assert 'knnclip_worker_request_seconds_count{endpoint="/segment"}' in metrics
        assert 'knnclip_worker_errors_total{kind="400"} 1.0' in metrics
        assert "/segment" in client.get("/openapi.json").json()["paths"]


def test_upload_limits(settings, releases, embedders):
    from fastapi.testclient import TestClient

    _, link = releases
    settings.worker.max_pixels = 1000
    with TestClient(app_for(settings, link, embedders)) as client:
        wait_ready(client)
        r = client.post("/segment", files={"image": ("x.png", png(blocks_image()), "image/png")})
        assert r.status_code == 413 and "pixels" in r.json()["detail"]
        settings.worker.max_pixels = 10**6
        settings.worker.max_upload_mb = 0.0001  # ~100 bytes
    with TestClient(app_for(settings, link, embedders)) as client:
        wait_ready(client)
        r = client.post("/segment", files={"image": ("x.png", png(blocks_image()), "image/png")})
        assert r.status_code == 413 and "upload" in r.json()["detail"]


def test_api_with_token(settings, releases, embedders):
    from fastapi.testclient import TestClient

    _, link = releases
    settings.worker_token = "s3cret"
    good = {"Authorization": "Bearer s3cret"}
    with TestClient(app_for(settings, link, embedders)) as client:
        assert client.get("/healthz").status_code == 200
        wait_ready(client)
        files = {"image": ("x.png", png(blocks_image()), "image/png")}
        assert client.post("/segment", files=files).status_code == 401
        assert client.post("/segment", files=files, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.post("/segment", files=files, headers=good).status_code == 200
        assert client.get("/release").status_code == 401
        assert client.get("/release", headers=good).json()["version"] == "v1"
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=good).status_code == 200


def test_tampered_release_is_not_swapped_in(settings, releases, embedders):
    from fastapi.testclient import TestClient

    root, link = releases
    app = app_for(settings, link, embedders, start_watcher=False)
    watcher = app.state.watcher
    with TestClient(app) as client:
        assert watcher.poll_once() and client.get("/release").json()["version"] == "v1"
        v2 = make_snapshot(root, "v2", embedders, classes=("red", "green", "blue", "yellow"))
        with open(v2 / "labels.parquet", "ab") as f:
            f.write(b"tampered")
        point(link, v2)
        assert not watcher.poll_once()
        rel = client.get("/release").json()
        assert rel["version"] == "v1" and "checksum" in rel["last_reload_error"]
        r = client.post("/segment", files={"image": ("x.png", png(blocks_image()), "image/png")})
        assert r.status_code == 200 and r.json()["release"]["version"] == "v1"
        metrics = client.get("/metrics").text
        assert "knnclip_worker_reload_failing 1.0" in metrics
        assert 'knnclip_worker_reloads_total{outcome="failed"}' in metrics
        v3 = make_snapshot(root, "v3", embedders, classes=("red", "green", "blue", "yellow"))
        point(link, v3)
        assert watcher.poll_once()
        rel = client.get("/release").json()
        assert rel["version"] == "v3" and rel["vocabulary_size"] == 4 and rel["last_reload_error"] is None
        assert "knnclip_worker_reload_failing 0.0" in client.get("/metrics").text


@pytest.mark.slow
def test_swap_under_concurrent_requests_on_loopback(settings, releases, embedders):
    """4 clients post images while the alias moves v1 -> v2; no request may fail. Bounded:
    at most 4 x 40 requests and 60 s; stops as soon as v2 has answered a few requests."""
    import httpx
    import uvicorn

    root, link = releases
    v2 = make_snapshot(root, "v2", embedders, classes=("red", "green", "blue", "yellow"))
    app = app_for(settings, link, embedders, poll_seconds=0.05)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    results, failures = [], []
    stop = threading.Event()
    deadline = time.time() + 60
    try:
        with httpx.Client(base_url=base, timeout=30) as c:
            while time.time() < deadline:
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        data = png(blocks_image())

        def client():
            with httpx.Client(base_url=base, timeout=30) as c:
                for _ in range(40):
                    if stop.is_set() or time.time() > deadline:
                        return
                    try:
                        r = c.post("/segment", files={"image": ("x.png", data, "image/png")})
                        if r.status_code != 200:
                            failures.append(f"{r.status_code} {r.text[:200]}")
                        else:
                            results.append(r.json()["release"]["version"])
                    except Exception as exc:  # noqa: BLE001
                        failures.append(repr(exc))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for t in clients:
            t.start()
        while results.count("v1") < 8 and time.time() < deadline and any(t.is_alive() for t in clients):
            time.sleep(0.02)
        point(link, v2)
        while results.count("v2") < 8 and time.time() < deadline and any(t.is_alive() for t in clients):
            time.sleep(0.02)
        stop.set()
        for t in clients:
            t.join(30)
    finally:
        stop.set()
        server.should_exit = True
        thread.join(10)
    assert not failures, failures[:3]
    assert "v1" in results and "v2" in results
    first_v2 = results.index("v2")
    assert results[first_v2:].count("v1") <= 4, "after the swap only requests already in flight may finish on v1"


def test_not_ready_while_no_release_loads(settings, tmp_path, embedders):
    from fastapi.testclient import TestClient

    app = app_for(settings, tmp_path / "nothing-here", embedders, start_watcher=False)
    with TestClient(app) as client:
        app.state.watcher.poll_once()
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and "VerificationError" in r.json()["last_reload_error"]
        assert client.get("/release").json()["ready"] is False
        r = client.post("/segment", files={"image": ("x.png", png(blocks_image()), "image/png")})
        assert r.status_code == 503
