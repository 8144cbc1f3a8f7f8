"""Two roles configured apart: the base-model registry (a fake base model plugs in and is
served by the unchanged worker), the built-in base models, and the presets that pair roles."""
import io

import numpy as np
import pytest
from PIL import Image

from knnclip_core.config import list_presets, load_settings
from knnclip_core.errors import KnnclipError
from knnclip_core.index import build_snapshot
from knnclip_core.segment import BASE_MODELS, BaseModel, BaseModelSpec, FlatMemory, Segmenter, SegmentParams
from knnclip_core.segment.base_models import build_base_model
from knnclip_core.segment.release import EmbedderCache, LocalSnapshotSource
from knnclip_core.serving.service import create_app

H, W = 48, 64
COLOURS = {"red": [200, 40, 40], "green": [40, 200, 40], "blue": [40, 40, 200]}


def blocks():
    """Left red, right-top green, right-bottom blue (a little noise), and the three masks."""
    rng = np.random.default_rng(0)
    img = np.zeros((H, W, 3), np.uint8)
    masks = [np.zeros((H, W), bool) for _ in range(3)]
    masks[0][:, : W // 2] = True
    masks[1][: H // 2, W // 2:] = True
    masks[2][H // 2:, W // 2:] = True
    for m, colour in zip(masks, COLOURS.values()):
        img[m] = colour
    return np.clip(img.astype(int) + rng.integers(0, 12, img.shape), 0, 255).astype(np.uint8), masks


class FakeBaseModel(BaseModel):
    """A base model with its own 'mask head' (the three blocks) that is sure every mask is a
    zebra when it may say so; records what it was asked."""

    open_vocabulary = True

    def __init__(self, tag: str):
        super().__init__()
        self.id = f"fake|{tag}"
        self.calls = []

    def propose(self, image, method, masks=None, **options):
        if method == "masks":
            return super().propose(image, method, masks=masks, **options)
        return blocks()[1]

    def scores(self, image, masks, classes, shared=None):
        self.calls.append((len(masks), list(classes), shared[0] if shared else None))
        P = np.full((len(masks), len(classes)), 0.1 / max(len(classes) - 1, 1), np.float32)
        if "zebra" in classes:
            P[:, classes.index("zebra")] = 0.9
        return P / P.sum(axis=1, keepdims=True)


FAKES: dict = {}
if "fake-for-tests" not in BASE_MODELS:
    @BASE_MODELS.register("fake-for-tests")
    def _fake_factory(spec, memory_embedder, get_embedder):
        FAKES["last"] = FakeBaseModel(spec.options.get("tag", "v1"))
        return FAKES["last"]


def test_registry_refuses_duplicates_and_unknown_kinds():
    assert {"none", "clip", "fake-for-tests"} <= set(BASE_MODELS.names())
    with pytest.raises(ValueError, match="already registered"):
        BASE_MODELS.add("clip", lambda spec, memory_embedder, get_embedder: BaseModel())
    with pytest.raises(KnnclipError, match="unknown base model 'fc-clip'.*known: clip"):
        build_base_model(BaseModelSpec(kind="fc-clip"), memory_embedder=None)


def test_clip_base_model_needs_a_text_tower():
    from knnclip_core.embedders import get_embedder

    with pytest.raises(KnnclipError, match="text tower"):
        build_base_model(BaseModelSpec(kind="clip", backbone="classic"), get_embedder("classic", device="cpu"))


def test_dinov2_memory_beside_a_clip_base_model():
    """Memory backbone tiny DINOv2, base model tiny CLIP ViT: query vectors from one, P_base
    from the other's own forward (not the memory's vectors), fused as the paper says."""
    from knnclip_core.embedders import get_embedder
    from knnclip_core.segment.fusion import clip_scores
    from knnclip_core.segment.retrieval import retrieve

    dino, vit = get_embedder("tiny-dinov2-random", device="cpu"), get_embedder("tiny-vit-random", device="cpu")
    img, masks = blocks()
    xb = np.concatenate([dino.embed_masks(img, masks)] * 2)
    mem = FlatMemory(xb, np.array([0, 1, 2] * 2), list(COLOURS))
    params = SegmentParams(k=2, confidence_threshold=0.0, fusion_lambda=0.25,
                           base_model=BaseModelSpec(kind="clip", backbone="tiny-vit-random"))
    seg = Segmenter(dino, mem, params)
    assert seg.base_model.id == f"clip|{vit.id}" and seg.embedder is dino
    res = seg.segment(img, masks=masks, extra_classes=["zebra"])
    assert res.classes == [*COLOURS, "zebra"]
    P_base = clip_scores(vit.embed_masks(img, masks), vit.encode_text(res.classes), vit.logit_scale)
    P_ret = retrieve(mem, dino.embed_masks(img, masks), 2, 0.1, res.classes).P
    np.testing.assert_allclose(np.stack([s.scores for s in res.segments]), 0.25 * P_ret + 0.75 * P_base, atol=1e-5)


def test_presets_pair_the_roles(tmp_path, monkeypatch):
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    monkeypatch.delenv("KNNCLIP_PRESET", raising=False)
    assert {"paper", "offline"} <= set(list_presets())
    base = load_settings()
    assert base.preset is None and base.worker.base_model.kind == "none" and base.worker.memory_backbone is None
    paper = load_settings(preset="paper")
    assert paper.preset == "paper" and paper.embed.backbone == paper.worker.memory_backbone == "dinov2-vits14"
    assert (paper.worker.base_model.kind, paper.worker.base_model.backbone) == ("clip", "convnext-large-laion2b")
    assert paper.worker.k == base.worker.k  # everything else keeps the defaults
    offline = load_settings(preset="offline")
    assert (offline.worker.memory_backbone, offline.worker.base_model.kind) == ("classic-v2", "none")
    monkeypatch.setenv("KNNCLIP_PRESET", "paper")  # one setting selects it
    assert load_settings().worker.base_model.kind == "clip"
    monkeypatch.delenv("KNNCLIP_PRESET")
    cfg = tmp_path / "site.yaml"
    cfg.write_text("preset: paper\nworker:\n  base_model:\n    backbone: tiny-vit-random\n")
    site = load_settings(cfg)  # the preset named in a config file, which still overrides it
    assert (site.preset, site.worker.base_model.kind, site.worker.base_model.backbone) == \
        ("paper", "clip", "tiny-vit-random")
    with pytest.raises(ValueError, match="unknown preset 'fcclip'; known: offline, paper"):
        load_settings(preset="fcclip")


def test_fake_base_model_served_by_the_unchanged_worker(settings, tmp_path):
    """Plugged in through the registry and named in the settings only: the HTTP worker uses its
    masks and scores, and /release reports both roles."""
    from fastapi.testclient import TestClient

    embedders = EmbedderCache("cpu")
    emb = embedders.get("classic")
    img, masks = blocks()
    xb = np.concatenate([emb.embed_masks(img, masks)] * 2)
    snap = tmp_path / "v1"
    build_snapshot(snap, xb, [f"v1-{i}" for i in range(6)], list(COLOURS) * 2, emb.id,
                   lineage={"backbone": "classic"}, factory="Flat")
    settings.worker.base_model.kind = "fake-for-tests"
    settings.worker.base_model.options = {"tag": "served"}
    source = LocalSnapshotSource(snap, SegmentParams.from_settings(settings), embedders, alias="production")
    app = create_app(source, settings, start_watcher=False)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    with TestClient(app) as client:
        assert app.state.watcher.poll_once()
        rel = client.get("/release").json()
        assert rel["base_model_id"] == "fake|served" and rel["embedder_id"] == emb.id
        r = client.post("/segment", files={"image": ("x.png", buf.getvalue(), "image/png")},
                        params={"classes": ["zebra"]})
        assert r.status_code == 200, r.text
        body = r.json()
    asked = [*sorted(COLOURS), "zebra"]  # a snapshot's vocabulary is sorted
    assert body["classes"] == asked
    assert len(body["segments"]) == 3, "the base model's own masks, not the slic proposals"
    assert FAKES["last"].calls[-1] == (3, asked, emb.id)
    # close neighbours (the same blocks): retrieval takes part and wins over the base model
    assert [s["class"] for s in body["segments"]] == list(COLOURS)
    assert all(s["fused"] and s["scores"]["zebra"] == pytest.approx(0.45, abs=1e-4) for s in body["segments"])


def test_memory_backbone_setting_refuses_a_release_of_another(settings, tmp_path):
    """worker.memory_backbone names the query embedder; a release built with another is refused."""
    from knnclip_core.errors import EmbedderMismatchError

    embedders = EmbedderCache("cpu")
    emb = embedders.get("classic")
    img, masks = blocks()
    build_snapshot(tmp_path / "v1", emb.embed_masks(img, masks), ["a", "b", "c"], list(COLOURS), emb.id,
                   lineage={"backbone": "classic"}, factory="Flat")
    settings.worker.memory_backbone = "classic-v2"
    source = LocalSnapshotSource(tmp_path / "v1", SegmentParams.from_settings(settings), embedders)
    with pytest.raises(EmbedderMismatchError, match="classic-v1"):
        source(None)
    settings.worker.memory_backbone = "classic"
    loaded = LocalSnapshotSource(tmp_path / "v1", SegmentParams.from_settings(settings), embedders)(None)
    assert loaded.describe()["embedder_id"] == emb.id and loaded.describe()["base_model_id"] == "none"
