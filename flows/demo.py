"""`make demo`: the whole story on a fresh machine, offline.

sample data -> Prefect pipeline (ingest, validate, embed, curate, publish) -> promote to
production through the quality gate -> segment a sample image -> where everything is.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from knnclip_core.cli.main import main as knnclip
from knnclip_core.config import load_settings
from knnclip_core.redact import redact_url
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.workspace import Workspace

from flows.prefect_env import configure


def run_demo() -> int:
    """Run the demo in the workspace ($KNNCLIP_HOME, default ./.knnclip)."""
    base = load_settings()
    ws = Workspace.from_settings(base).ensure()
    train = write_sample_dataset(ws.home / "demo" / "train", images=60, classes=5, seed=0)
    holdout = write_sample_dataset(ws.home / "demo" / "holdout", images=16, classes=5, seed=1)
    # The promotion quality gate evaluates candidates on the held-out sample set.
    os.environ.setdefault("KNNCLIP_PUBLISH__GATE_EVAL_PATH", str(holdout))
    settings = load_settings()
    configure(ws)
    from flows.pipeline import curation_pipeline

    print(f"[1/3] pipeline: {train} -> ingest -> embed ({settings.embed.backbone}) -> curate -> publish -> promote",
          flush=True)
    result = curation_pipeline(path=str(train), alias="staging", promote_to="production")  # settings: the environment
    rel, ing = result["release"], result["ingest"][0]
    print(f"      ingested {ing['images']} images, {ing['segments']} segments ({ing['new_segments']} new, "
          f"{ing['quarantined']} quarantined)")
    print(f"      release {rel['uri']}: {rel['vectors']} vectors, {rel['classes']} classes, index {rel['factory']}")
    gate = (result.get("promoted") or {}).get("gate", {})
    print(f"      production -> version {rel['version']} (quality gate: {gate.get('status', 'n/a')})", flush=True)

    image = sorted((holdout / "images").iterdir())[0]
    out = ws.reports_dir / "demo-segment"
    print(f"[2/3] segment {image.name} with the production release", flush=True)
    code = knnclip(["segment", str(image), "--release", "production", "--out", str(out)])
    if code:
        return code
    print("[3/3] evaluate production on the held-out set", flush=True)
    code = knnclip(["eval", str(holdout), "--release", "production"])  # headline + per-class IoU table
    if code:
        return code

    venv = Path(sys.executable).parent
    print(f"""
Done. Everything is in {ws.home}:
  catalog       {redact_url(ws.catalog_url)}
  memory        {ws.memory_dir}   (LanceDB)
  releases      {ws.mlflow_dir}   (MLflow registry)
  validation    {ws.data_docs_dir / 'index.html'}
  segmentation  {out}

Open the UIs:
  MLflow     {venv}/mlflow ui --backend-store-uri sqlite:///{ws.mlflow_dir / 'mlflow.db'} --port 5000
  Prefect    PREFECT_HOME={ws.prefect_dir} {venv}/prefect server start --port 4200
  Dashboard  {venv}/knnclip dashboard --port 8501
  Worker     {venv}/knnclip serve --release models:/{settings.publish.model_name}@production --port 8080""")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
