"""The promotion quality gate with its real evaluator: the release's embedder classifies the
ground-truth segments of the configured evaluation set; a worse release is refused."""
import pytest

from knnclip_core.config import load_settings
from knnclip_core.embed_stage import run_embed
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.curate import curate
from knnclip_core.memory.forget import forget
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.workspace import Workspace
from registry.gate import GateRefusedError
from registry.publish import publish
from registry.releases import promote
from registry.store import open_registry


def test_gate_refuses_a_release_that_forgot_classes(tmp_path, monkeypatch):
    holdout = write_sample_dataset(tmp_path / "holdout", images=6, classes=4, seed=11)
    monkeypatch.setenv("KNNCLIP_PUBLISH__GATE_EVAL_PATH", str(holdout))
    settings = load_settings(home=tmp_path / "ws")
    ws = Workspace.from_settings(settings).ensure()
    ingest_path(settings, write_sample_dataset(tmp_path / "two", images=8, classes=2, seed=12), progress=False)
    rich = ingest_path(settings, write_sample_dataset(tmp_path / "four", images=8, classes=4, seed=13), progress=False)
    run_embed(settings, num_workers=0)  # the default backbone (classic-v2)
    curate(settings, ws)
    good = publish(settings, ws)
    ctx = open_registry(settings, ws)
    first = promote(ctx, good["version"], alias="production")
    assert first["gate"]["status"] == "first"
    good_accuracy = first["gate"]["candidate"]["segment_accuracy"]
    assert good_accuracy > 0.9, first["gate"]

    forget(settings, ws, batch=rich.batch_id, reason="test: lose two classes")
    curate(settings, ws)
    worse = publish(settings, ws)
    assert worse["version"] == good["version"] + 1 and worse["classes"] == 2
    with pytest.raises(GateRefusedError, match="segment_accuracy"):
        promote(ctx, worse["version"], alias="production")
    assert ctx.aliases()["production"] == good["version"]
    forced = promote(ctx, worse["version"], alias="production", force=True)
    assert forced["gate"]["status"] == "forced" and ctx.aliases()["production"] == worse["version"]
    assert forced["gate"]["candidate"]["segment_accuracy"] < good_accuracy
