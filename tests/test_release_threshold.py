"""A release carries its calibrated T (real MLflow on SQLite, a real curated memory) and the
worker, `releases show` and /release use it; an operator override wins; a release published
before calibration keeps the configured T and says so."""
from __future__ import annotations

import json

import numpy as np
import pytest

from knnclip_core.embed_stage import run_embed
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.curate import curate
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.segment.calibrate import SOURCE_OVERRIDE, SOURCE_PREDATES, SOURCE_RELEASE, split_by_image
from conftest import local_registry


@pytest.fixture
def released(tmp_path, monkeypatch):
    """(settings, workspace, publish result) of a calibrated release of a curated sample memory."""
    from knnclip_core.workspace import Workspace
    from registry.publish import publish

    ctx = local_registry(tmp_path, monkeypatch, "knnclip-memory")
    settings = ctx.settings
    settings.publish.calibration.fraction = 0.5  # a small memory: enough held-out rows
    settings.publish.calibration.value = 0.75
    settings.curate.dedup_threshold = 0.99999  # keep the synthetic scenes' rows
    ws = Workspace.from_settings(settings).ensure()
    ingest_path(settings, write_sample_dataset(tmp_path / "data", images=20, classes=5, seed=2), progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, ws, "classic")
    return settings, ws, publish(settings, ws, backbone="classic", alias="production")


def test_a_release_carries_its_threshold_and_the_worker_uses_it(released, capsys):
    from fastapi.testclient import TestClient

    from knnclip_core.cli.main import main
    from knnclip_core.serving.service import create_app
    from knnclip_core.memory.published import load_kept
    from registry.releases import show_release
    from registry.store import open_registry
    from serving.worker_source import RegistryReleaseSource

    settings, ws, pub = released
    ctx = open_registry(settings)
    mv = ctx.model_version(pub["version"])
    shown = show_release(ctx, pub["version"])
    cal = shown["manifest"]["calibration"]
    kept = load_kept(ws, pub["embedder_id"])
    held, _ = split_by_image(kept.image_ids, 0.5, 0)
    assert cal["split"]["held_out_rows"] == len(held) and cal["split"]["by"] == "image"
    n_images = len(set(kept.image_ids))
    assert cal["split"]["images"] == n_images and cal["split"]["held_out_images"] == round(0.5 * n_images)
    assert cal["threshold"] is not None and cal["met"] and 0.0 < cal["threshold"] <= 1.0
    row = [r for r in cal["curve"] if r[0] == cal["threshold"]][0]
    assert row[1] >= 0.75 and all(r[1] < 0.75 for r in cal["curve"] if r[0] > cal["threshold"])
    assert f"T = {cal['threshold']:.2f}" in mv.description and "### Confidence threshold" in mv.description
    run = ctx.client.get_run(mv.run_id)
    assert run.data.metrics["confidence_threshold"] == pytest.approx(cal["threshold"])
    assert shown["confidence_threshold"]["value"] == cal["threshold"]
    assert shown["confidence_threshold"]["source"] == SOURCE_RELEASE

    loaded = RegistryReleaseSource("models:/knnclip-memory@production", settings)(None)
    seg = loaded.segmenter
    assert (seg.threshold, seg.threshold_source) == (cal["threshold"], SOURCE_RELEASE)
    assert loaded.describe()["confidence_threshold"] == cal["threshold"]
    img = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(
        sorted((ws.home.parent / "data" / "images").glob("*.png"))[0]).convert("RGB"))
    res = seg.segment(img)
    assert res.segments
    for s in res.segments:  # the release's T decides: below it a segment is unknown (no base model)
        assert (s.label < 0) == (s.confidence < cal["threshold"])

    settings.worker.confidence_threshold = 0.05  # the operator's override wins
    over = RegistryReleaseSource("models:/knnclip-memory@production", settings)(None).segmenter
    assert (over.threshold, over.threshold_source) == (0.05, SOURCE_OVERRIDE)
    assert show_release(ctx, pub["version"])["confidence_threshold"]["source"] == SOURCE_OVERRIDE

    settings.worker.confidence_threshold = None  # /release and `releases show` say which T and why
    app = create_app(RegistryReleaseSource("models:/knnclip-memory@production", settings), settings,
                     start_watcher=False)
    app.state.watcher.poll_once()
    body = TestClient(app).get("/release").json()
    assert body["threshold_source"] == SOURCE_RELEASE and body["confidence_threshold"] > 0
    assert main(["releases", "show", str(pub["version"])]) == 0
    out = capsys.readouterr().out
    assert f"confidence threshold T {body['confidence_threshold']:.4g} in force ({SOURCE_RELEASE})" in out


def test_a_release_published_before_calibration_keeps_the_configured_threshold(tmp_path, monkeypatch):
    from knnclip_core.index import build_snapshot
    from knnclip_core.segment.release import EmbedderCache
    from registry.publish import publish_snapshot
    from registry.releases import show_release
    from serving.worker_source import RegistryReleaseSource

    ctx = local_registry(tmp_path, monkeypatch, "knnclip-memory")
    emb = EmbedderCache("cpu").get("classic")
    xb = np.eye(emb.dim, dtype=np.float32)[:4]
    build_snapshot(tmp_path / "old", xb, ["a", "b", "c", "d"], ["x", "x", "y", "y"], emb.id,
                   lineage={"backbone": "classic"}, factory="Flat")  # no calibration, as before
    v = publish_snapshot(ctx, tmp_path / "old", alias="production", backbone="classic")["version"]
    seg = RegistryReleaseSource("models:/knnclip-memory@production", ctx.settings)(None).segmenter
    assert (seg.threshold, seg.threshold_source) == (0.6, SOURCE_PREDATES)
    shown = show_release(ctx, v)["confidence_threshold"]
    assert shown == {"value": 0.6, "source": SOURCE_PREDATES, "calibration": None}
    assert "published before calibration" in json.dumps(ctx.model_version(v).description)
