"""Fixtures of the store and publish reliability tests (issue 21): small workspaces at each
stage of the pipeline, and the CLI run in-process."""
from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture
def knnclip(capsys):
    """`knnclip(home, *argv)` runs the CLI in-process: (exit code, stdout, stderr)."""
    from knnclip_core.cli.main import main

    def run(home, *argv):
        rc = main(["--home", str(home), *argv])
        out, err = capsys.readouterr()
        return rc, out, err
    return run


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """{stage: workspace} of a small sample dataset: 'ingested', 'embedded', 'curated',
    and the data folder under 'data'."""
    from knnclip_core.cli.main import main
    from knnclip_core.sample_data import write_sample_dataset

    root = tmp_path_factory.mktemp("stores")
    saved = {k: os.environ.get(k) for k in ("KNNCLIP_HOME", "MLFLOW_TRACKING_URI")}
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    data = write_sample_dataset(root / "data", images=8, classes=3, seed=3)
    out = {"data": data}
    home = root / "work"
    try:
        for stage, argv in (("ingested", ["ingest", str(data)]), ("embedded", ["embed"]), ("curated", ["curate"])):
            assert main(["--home", str(home), *argv]) == 0
            shutil.copytree(home, root / stage, symlinks=True)
            out[stage] = root / stage
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return out


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    monkeypatch.setenv("KNNCLIP_HOME", "/nonexistent")  # restored after the test (main sets it)
