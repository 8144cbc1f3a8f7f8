"""`unknown` is visible: unknown segments are drawn grey with dark diagonal hatching and listed in
the legend, in the CLI/worker overlay (knnclip_core/segment/render.py) and on the dashboard's
try-it page; uncovered pixels (no segment) stay as they were."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from knnclip_core.segment.render import (LEGEND_PAD, LEGEND_ROW, LEGEND_SWATCH, UNKNOWN_GREY, UNKNOWN_STRIPE,
                                         hatch, palette, result_overlay, unknown_mask)
from knnclip_core.segment.segmenter import Segment, SegmentationResult

H, W = 60, 120


def result_with_unknown() -> tuple[np.ndarray, SegmentationResult]:
    """Columns 0-39 'road' (class 0), 40-89 unknown, 90-119 covered by no segment."""
    image = np.full((H, W, 3), 100, np.uint8)
    masks = [np.zeros((H, W), bool) for _ in range(2)]
    masks[0][:, :40], masks[1][:, 40:90] = True, True
    label_map = np.full((H, W), -1, np.int32)
    label_map[masks[0]] = 0
    segs = [Segment(mask=m, label=lab, score=0.0, scores=np.zeros(2), confidence=0.0, fused=False, neighbours=[])
            for m, lab in zip(masks, (0, -1))]
    return image, SegmentationResult(classes=["road", "sky"], label_map=label_map, segments=segs,
                                     panoptic_map=np.zeros((H, W), np.int32), panoptic=[])


def test_unknown_segments_are_hatched_grey_and_uncovered_pixels_left_alone():
    image, res = result_with_unknown()
    assert unknown_mask(res)[:, 40:90].all() and not unknown_mask(res)[:, :40].any()
    assert not unknown_mask(res)[:, 90:].any()
    out = np.asarray(result_overlay(image, res)).astype(int)
    region = out[LEGEND_PAD + 3 * LEGEND_ROW:, 40:90]  # below the legend box
    stripes = hatch(H, W)[LEGEND_PAD + 3 * LEGEND_ROW:, 40:90]
    expect_stripe = (0.5 * 100 + 0.5 * np.array(UNKNOWN_STRIPE)).astype(int)
    expect_grey = (0.5 * 100 + 0.5 * np.array(UNKNOWN_GREY)).astype(int)
    assert stripes.any() and (~stripes).any()
    assert (np.abs(region[stripes] - expect_stripe) <= 1).all()
    assert (np.abs(region[~stripes] - expect_grey) <= 1).all()
    assert (out[:, 90:] == 100).all()  # no segment: the image as it is
    road = (0.5 * 100 + 0.5 * palette(2)[0].astype(int)).astype(int)
    assert (np.abs(out[40:, 5] - road) <= 1).all()


def test_unknown_is_a_row_of_the_legend():
    image, res = result_with_unknown()
    out = np.asarray(result_overlay(image, res)).astype(int)
    assert (out[LEGEND_PAD + 5, LEGEND_PAD + 5] == palette(2)[0]).all()  # row 0: road
    y = LEGEND_PAD + LEGEND_ROW  # row 1: unknown, a hatched swatch
    swatch = out[y:y + LEGEND_SWATCH, LEGEND_PAD:LEGEND_PAD + LEGEND_SWATCH]
    stripes = hatch(LEGEND_SWATCH, LEGEND_SWATCH, y, LEGEND_PAD)
    assert (swatch[stripes] == UNKNOWN_STRIPE).all() and (swatch[~stripes] == UNKNOWN_GREY).all()
    text = out[y:y + LEGEND_ROW - 2, 2 * LEGEND_PAD + LEGEND_SWATCH:2 * LEGEND_PAD + LEGEND_SWATCH + 45]
    assert (text > 200).all(axis=-1).sum() > 15  # the word "unknown" in white
    # without unknown segments there is no such row
    res.segments = res.segments[:1]
    plain = np.asarray(result_overlay(image, res)).astype(int)
    assert not (plain[y:y + LEGEND_SWATCH, LEGEND_PAD:LEGEND_PAD + LEGEND_SWATCH] == UNKNOWN_GREY).all(axis=-1).any()


def test_worker_overlay_draws_unknown(settings, tmp_path):
    """Over HTTP, with T above every confidence (all unknown): the overlay PNG hatches the
    segments and its legend lists unknown (before: the image untouched, an empty legend)."""
    from fastapi.testclient import TestClient

    from knnclip_core.segment.release import EmbedderCache, LocalSnapshotSource
    from knnclip_core.segment.segmenter import SegmentParams
    from knnclip_core.serving.service import create_app
    from test_worker import blocks_image, make_snapshot, png

    embedders = EmbedderCache("cpu")
    snap = make_snapshot(tmp_path, "v1", embedders)
    params = SegmentParams.from_settings(settings)
    params.confidence_threshold = 1.01
    with TestClient(create_app(LocalSnapshotSource(snap, params, embedders), settings)) as client:
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            __import__("time").sleep(0.05)
        body = client.post("/segment", files={"image": ("x.png", png(blocks_image()), "image/png")},
                           params={"overlay": "true"}).json()
        assert {s["class"] for s in body["segments"]} == {"unknown"}
        assert client.get("/release").json()["threshold_source"] == "operator override"
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))).astype(int)
    img = blocks_image().astype(int)
    y = LEGEND_PAD  # the only legend row: unknown
    stripes = hatch(LEGEND_SWATCH, LEGEND_SWATCH, y, LEGEND_PAD)
    swatch = overlay[y:y + LEGEND_SWATCH, LEGEND_PAD:LEGEND_PAD + LEGEND_SWATCH]
    assert (swatch[stripes] == UNKNOWN_STRIPE).all()
    low = overlay[30:, :]
    stripe = hatch(*img.shape[:2])[30:, :]
    expect = (0.5 * img[30:] + 0.5 * np.array(UNKNOWN_STRIPE)).astype(int)
    assert (np.abs(low[stripe] - expect[stripe]) <= 1).all()


def test_try_page_lists_unknown_with_a_hatched_swatch():
    from dashboards.pages_try import result_html
    from dashboards.tryit import UNKNOWN_SWATCH

    res = {"release": {"version": "3", "alias": "production", "vocabulary_size": 2, "embedder_id": "e",
                       "confidence_threshold": 0.42, "threshold_source": "release-calibrated"},
           "width": 10, "height": 10, "overlay": "data:,", "image": "data:,",
           "classes": [{"name": "road", "colour": "#102030", "pixels": 60},
                       {"name": "unknown", "colour": UNKNOWN_SWATCH, "pixels": 40, "unknown": True}],
           "segments": [{"id": 0, "class": "unknown", "colour": UNKNOWN_SWATCH, "score": 0.0, "confidence": 0.1,
                         "fused": False, "area": 40, "top_scores": {}, "neighbours": []}], "timings": {}}
    html = result_html(res)
    assert html.count("repeating-linear-gradient(45deg") == 3  # classes found, segments, voters
    assert "T 0.42 (release-calibrated)" in html


@pytest.mark.parametrize("n_rows", [1, 3])
def test_legend_keeps_the_unknown_row_when_space_is_short(n_rows):
    from knnclip_core.segment.render import draw_legend

    h = 2 * LEGEND_PAD + n_rows * LEGEND_ROW
    label_map = np.tile(np.arange(6) % 5, (h, 10))[:, :60].astype(np.int32)
    unknown = np.zeros_like(label_map, bool)
    unknown[:, -3:] = True
    out = np.asarray(draw_legend(Image.new("RGB", (60, h)), label_map, list("abcde"), unknown)).astype(int)
    y = LEGEND_PAD + (n_rows - 1) * LEGEND_ROW
    swatch = out[y:y + LEGEND_SWATCH, LEGEND_PAD:LEGEND_PAD + LEGEND_SWATCH]
    assert (swatch[hatch(LEGEND_SWATCH, LEGEND_SWATCH, y, LEGEND_PAD)] == UNKNOWN_STRIPE).all()
