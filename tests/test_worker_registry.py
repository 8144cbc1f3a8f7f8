"""The worker against a real MLflow registry on tmp_path: the release source follows promote
and rollback, refuses a tampered version, `knnclip segment` / `knnclip eval` run on it, and a
release built with one memory backbone is served beside a different base model."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knnclip_core.index import build_snapshot
from knnclip_core.segment.release import EmbedderCache

pytestmark = pytest.mark.slow

H, W = 48, 64
COLOURS = {"red": [200, 40, 40], "green": [40, 200, 40], "blue": [40, 40, 200]}


def scene(seed):
    """Three colour blocks in a seeded order, and their (class, mask) pairs."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    rng.shuffle(names)
    img = np.zeros((H, W, 3), np.uint8)
    segs = []
    for j, name in enumerate(names):
        m = np.zeros((H, W), bool)
        m[:, j * W // 3: (j + 1) * W // 3] = True
        img[m] = COLOURS[name]
        segs.append((name, m))
    return np.clip(img.astype(int) + rng.integers(0, 12, img.shape), 0, 255).astype(np.uint8), segs


def write_evalset(data):
    """Scenes 3-5 as a semantic-png dataset (images/, masks/, classes.txt); returns its folder."""
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    names = list(COLOURS)
    (data / "classes.txt").write_text("\n".join(names) + "\n")
    for s in range(3, 6):
        img, segs = scene(s)
        labels = np.zeros((H, W), np.uint8)
        for n, m in segs:
            labels[m] = names.index(n)
        Image.fromarray(img).save(data / "images" / f"im{s}.png")
        Image.fromarray(labels).save(data / "masks" / f"im{s}.png")
    return data


@pytest.fixture
def published(settings, tmp_path):
    from registry.publish import publish_snapshot
    from registry.store import open_registry

    emb = EmbedderCache("cpu").get("classic")
    ctx = open_registry(settings)

    def publish(name, alias, extra_class=None):
        xb, names = [], []
        for s in range(3):
            img, segs = scene(s)
            xb.append(emb.embed_masks(img, [m for _, m in segs]))
            names += [n for n, _ in segs]
        xb = np.concatenate(xb)
        if extra_class:
            xb = np.vstack([xb, np.eye(emb.dim, dtype=np.float32)[:1]])
            names.append(extra_class)
        build_snapshot(tmp_path / name, xb, [f"{name}-{i}" for i in range(len(xb))], names, emb.id,
                       lineage={"backbone": "classic"}, factory="Flat")
        return publish_snapshot(ctx, tmp_path / name, alias=alias, backbone="classic")["version"]

    return ctx, publish


def test_source_follows_promote_and_rollback_and_refuses_tampering(settings, published):
    from registry.aliases import move_alias, rollback_alias
    from serving.worker_source import RegistryReleaseSource
    from knnclip_core.errors import VerificationError
    from knnclip_core.serving.watcher import ReleaseWatcher

    ctx, publish = published
    v1 = publish("s1", "production")
    source = RegistryReleaseSource("models:/knnclip-memory@production", settings)
    watcher = ReleaseWatcher(source, poll_seconds=1)
    assert watcher.poll_once() and watcher.current.version == str(v1)
    assert watcher.current.alias == "production" and watcher.current.vocabulary_size == 3
    assert not watcher.poll_once(), "unchanged alias: nothing loaded"
    v2 = publish("s2", "staging", extra_class="yellow")
    assert not watcher.poll_once()
    move_alias(ctx, "production", v2, action="promote")
    assert watcher.poll_once() and watcher.current.version == str(v2) and watcher.current.vocabulary_size == 4
    rollback_alias(ctx, "production")
    assert watcher.poll_once() and watcher.current.version == str(v1)
    # a tampered version in the artifact store is not swapped in
    v3 = publish("s3", "staging", extra_class="purple")
    from registry.store import snapshot_uri

    src = snapshot_uri(ctx.model_version(v3))
    art = Path(src.replace("file://", "")) if src.startswith("file://") else Path(src)
    with open(art / "labels.parquet", "ab") as f:
        f.write(b"tampered")
    move_alias(ctx, "production", v3, action="promote")
    assert not watcher.poll_once()
    assert watcher.current.version == str(v1) and "VerificationError" in watcher.last_error
    with pytest.raises(VerificationError):
        source(str(v1))  # remembered: not downloaded again until the alias moves


def test_cli_segment_and_eval(settings, published, tmp_path, capsys):
    from knnclip_core.cli.main import main

    _, publish = published
    publish("s1", "production")
    data = write_evalset(tmp_path / "evalset")
    names = list(COLOURS)
    out = tmp_path / "seg"
    assert main(["segment", str(data / "images" / "im3.png"), "--release", "production", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    item = result["images"][0]
    assert Path(item["label_map"]).is_file() and Path(item["overlay"]).is_file()
    body = json.loads(Path(item["json"]).read_text())
    assert body["release"]["version"] == "1" and body["segments"]
    assert main(["eval", str(data), "--release", "models:/knnclip-memory@production", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["segment_accuracy"] == 1.0 and report["miou"] == pytest.approx(1.0)
    assert set(report["per_class_iou"]) == set(names) and report["pixel_accuracy"] == pytest.approx(1.0)
    assert main(["eval", str(data), "--release", "1", "--masks-from", "proposals", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["segment_accuracy"] is None and report["miou"] > 0.3
    assert main(["segment", str(data / "images" / "nope.png"), "--release", "production"]) == 2


def test_memory_backbone_and_base_model_apart_end_to_end(settings, tmp_path, capsys):
    """A release built with the tiny DINOv2 memory backbone, served over HTTP from the real
    registry beside the tiny CLIP ViT base model: /release, the eval report and the promotion
    gate's figures all record both ids; the base model answers a class the memory lacks."""
    from fastapi.testclient import TestClient

    from knnclip_core.cli.main import main
    from knnclip_core.serving.service import create_app
    from registry.gate import default_evaluator, run_gate
    from registry.publish import publish_snapshot
    from registry.store import open_registry
    from serving.worker_source import RegistryReleaseSource

    embedders = EmbedderCache("cpu")
    dino, vit = embedders.get("tiny-dinov2-random"), embedders.get("tiny-vit-random")
    xb, names = [], []
    for s in range(3):
        img, segs = scene(s)
        xb.append(dino.embed_masks(img, [m for _, m in segs]))
        names += [n for n, _ in segs]
    build_snapshot(tmp_path / "d1", np.concatenate(xb), [f"d1-{i}" for i in range(len(names))], names, dino.id,
                   lineage={"backbone": "tiny-dinov2-random"}, factory="Flat")
    ctx = open_registry(settings)
    version = publish_snapshot(ctx, tmp_path / "d1", alias="production", backbone="tiny-dinov2-random")["version"]
    settings.worker.base_model.kind = "clip"
    settings.worker.base_model.backbone = "tiny-vit-random"
    settings.worker.proposals = "grid"
    settings.worker.merge_rounds = 0  # the 16 cells as they came (regrouping is tested in test_regroup.py)
    base_id = f"clip|{vit.id}"
    source = RegistryReleaseSource("models:/knnclip-memory@production", settings, embedders=embedders)
    app = create_app(source, settings, start_watcher=False)
    img, _ = scene(7)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    with TestClient(app) as client:
        assert app.state.watcher.poll_once()
        rel = client.get("/release").json()
        assert (rel["version"], rel["embedder_id"], rel["base_model_id"]) == (str(version), dino.id, base_id)
        r = client.post("/segment", files={"image": ("x.png", buf.getvalue(), "image/png")},
                        params={"classes": ["zebra"]})
        assert r.status_code == 200, r.text
        body = r.json()
    assert body["classes"] == [*sorted(COLOURS), "zebra"] and len(body["segments"]) == 16  # 4x4 grid
    assert all("zebra" in s["scores"] for s in body["segments"]), "P_base covers the class the memory lacks"
    # eval report (CLI, settings through the environment) and the promotion gate record both ids
    data = write_evalset(tmp_path / "evalset")
    env = {"KNNCLIP_WORKER__BASE_MODEL__KIND": "clip", "KNNCLIP_WORKER__BASE_MODEL__BACKBONE": "tiny-vit-random"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        assert main(["eval", str(data), "--release", "production", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (report["embedder_id"], report["base_model_id"]) == (dino.id, base_id)
    assert (report["release"]["embedder_id"], report["release"]["base_model_id"]) == (dino.id, base_id)
    settings.publish.gate_eval_path = str(data)
    gate = run_gate(ctx, version, "production", default_evaluator(settings), tolerance=0.01)
    assert gate["status"] == "first"
    assert (gate["candidate"]["embedder_id"], gate["candidate"]["base_model_id"]) == (dino.id, base_id)
    tags = ctx.model_version(version).tags
    assert tags["knnclip.gate.production.base_model_id"] == base_id
    assert tags["knnclip.gate.production.embedder_id"] == dino.id
