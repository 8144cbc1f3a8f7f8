"""Each release is a real MLflow model: a pyfunc flavour from code (no pickle) with a signature,
so `mlflow.pyfunc.load_model("models:/knnclip-memory@production")` segments an image in a
process that never imports knnclip itself."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from knnclip_core.embed_stage import run_embed
from knnclip_core.ingest import ingest_path
from knnclip_core.memory.curate import curate
from knnclip_core.sample_data import write_sample_dataset

REPO = Path(__file__).resolve().parents[1]

CALLER = """
import io, json, sys
import mlflow, pandas as pd
from PIL import Image
model = mlflow.pyfunc.load_model("models:/knnclip-memory@production")
out = model.predict(pd.DataFrame({"image": [open(sys.argv[1], "rb").read()]}))
labels = Image.open(io.BytesIO(out["label_map_png"][0]))
print(json.dumps({"classes": json.loads(out["classes"][0]), "segments": json.loads(out["segments"][0]),
                  "labels": sorted(set(labels.getdata())), "size": labels.size,
                  "inputs": model.metadata.get_input_schema().input_names(),
                  "outputs": model.metadata.get_output_schema().input_names(),
                  }))
"""


def test_production_release_is_a_pyfunc_model_that_segments(settings, workspace, tmp_path):
    from PIL import Image

    from knnclip_core.segment import SegmentParams
    from knnclip_core.segment.release import EmbedderCache, segmenter_for_snapshot
    from registry import load_release
    from registry.publish import publish
    from registry.releases import promote
    from registry.store import default_tracking_uri, open_registry

    imports = [line for line in CALLER.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "knnclip" in line or "registry" in line]  # the caller knows only mlflow
    data = write_sample_dataset(tmp_path / "d", images=4, classes=3, seed=3)
    ingest_path(settings, data, progress=False)
    run_embed(settings, backbone="classic", num_workers=0)
    curate(settings, workspace, "classic")
    rel = publish(settings, workspace, backbone="classic")
    ctx = open_registry(settings, workspace)
    promote(ctx, rel["version"], "production", evaluator=None)
    image = sorted((data / "images").iterdir())[0]
    env = {**os.environ, "MLFLOW_TRACKING_URI": default_tracking_uri(workspace), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", CALLER, str(image)], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["inputs"] == ["image"] and res["outputs"] == ["classes", "segments", "label_map_png"]

    # oracle: the worker's own segmenter over the same verified release gives the same answer
    snap = load_release("production", settings).snapshot
    seg = segmenter_for_snapshot(snap, SegmentParams.from_settings(settings), EmbedderCache(device="cpu"))
    with Image.open(image) as im:
        expected = seg.segment(np.asarray(im.convert("RGB")))
    assert res["classes"] == expected.classes == list(snap.vocabulary)
    assert [s["label"] for s in res["segments"]] == [expected.classes[s.label] if s.label >= 0 else None
                                                     for s in expected.segments]
    assert res["size"] == [expected.label_map.shape[1], expected.label_map.shape[0]]
    assert set(res["labels"]) == {65535 if v < 0 else int(v) for v in np.unique(expected.label_map)}

    # a real MLflow model version: pyfunc from code, a signature, no pickle anywhere
    mv = ctx.model_version(rel["version"])
    assert mv.source.endswith("/model")
    files = [a.path for a in _walk(ctx.client, mv.run_id, "model")]
    assert "model/MLmodel" in files and "model/pyfunc_model.py" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))], files


def _walk(client, run_id, path):
    for a in client.list_artifacts(run_id, path):
        if a.is_dir:
            yield from _walk(client, run_id, a.path)
        else:
            yield a
