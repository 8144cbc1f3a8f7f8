"""Issue 12, items 10 and 13 (worker): the token and the body size are checked before the
body is read (real uvicorn on loopback, raw sockets), slow bodies time out, an image bomb
gets 413, large photos are decoded at reduced scale, /docs and /openapi.json need the token."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.fault_scenarios import common
from knnclip_core.serving.upload_guard import token_ok
from tests.test_worker import app_for, blocks_image, embedders, png, releases, wait_ready  # noqa: F401 (fixtures)

pytestmark = pytest.mark.reliability
TOKEN = {"Authorization": "Bearer s3cret"}
MB = 1024 * 1024


@pytest.fixture
def worker(settings, releases, embedders):  # noqa: F811
    settings.worker_token = "s3cret"
    settings.worker.body_timeout_s = 1.5
    _, link = releases
    with common.serving(app_for(settings, link, embedders)) as base:
        yield base


def test_unauthenticated_300mb_upload_is_refused_before_its_body(worker):
    r = common.raw_post(worker, "/segment", 300 * MB, {}, timeout=120)
    assert r["status"] == 401
    assert r["sent"] < 16 * MB, f"{r['sent'] / MB:.0f} MB went out before the 401"


def test_declared_2gb_body_is_refused_at_once(worker):
    r = common.raw_post(worker, "/segment", 2 * 1024 * MB, TOKEN, declare=2 * 1024 * MB, timeout=60)
    assert r["status"] == 413 and r["sent"] < 16 * MB


def test_undeclared_oversized_stream_is_cut_off(worker):
    r = common.raw_post(worker, "/segment", 200 * MB, TOKEN, declare=None, timeout=120)
    assert r["status"] == 413 and r["sent"] < 40 * MB


def test_slow_body_times_out(worker):
    r = common.raw_post(worker, "/segment", 1000, TOKEN, chunk=10, rate_bps=20, timeout=30)
    assert r["status"] == 408 and r["seconds"] < 10


def test_docs_and_openapi_need_the_token(settings, releases, embedders):  # noqa: F811
    from fastapi.testclient import TestClient

    settings.worker_token = "s3cret"
    with TestClient(app_for(settings, releases[1], embedders)) as client:
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert client.get(path).status_code == 401, path
        assert client.get("/openapi.json", headers=TOKEN).status_code == 200
        assert client.get("/healthz").status_code == 200


def test_image_bomb_gets_413(settings, releases, embedders, monkeypatch):  # noqa: F811
    from fastapi.testclient import TestClient

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's default bomb threshold
    with TestClient(app_for(settings, releases[1], embedders)) as client:
        wait_ready(client)
        for w, h in ((100_000, 100_000), (20_000, 20_000)):
            r = client.post("/segment", files={"image": ("b.png", common.bomb_png(w, h), "image/png")})
            assert r.status_code == 413, (w, h, r.text)


def test_large_photo_is_decoded_at_reduced_scale(settings, releases, embedders):  # noqa: F811
    from fastapi.testclient import TestClient

    img = np.asarray(Image.fromarray(blocks_image()).resize((4000, 3000), Image.NEAREST))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    with TestClient(app_for(settings, releases[1], embedders)) as client:
        wait_ready(client)
        r = client.post("/segment", files={"image": ("big.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    side = settings.worker.max_side
    assert (body["width"], body["height"]) == (side, side * 3 // 4) and body["scale"] == pytest.approx(side / 4000)
    assert {s["class"] for s in body["segments"]} & {"red", "green", "blue"}


def test_token_check():
    assert token_ok("Bearer s3cret", "s3cret") and token_ok("bearer  s3cret ", "s3cret")
    assert not token_ok("Bearer s3cre", "s3cret") and not token_ok("s3cret", "s3cret") and not token_ok("", "s3cret")
