"""`make demo`, the README's front door, on a fresh workspace: the whole story ends with a
release in production through the gate, a segmented image and an evaluation."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_end_to_end_on_a_fresh_workspace(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNNCLIP_", "PREFECT_", "MLFLOW_"))}
    env.update(KNNCLIP_HOME=str(tmp_path / "ws"), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "flows.demo"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "production -> version 1 (quality gate: first)" in out, out
    assert "[2/3] segment" in out and (tmp_path / "ws" / "reports" / "demo-segment").is_dir()
    assert "mIoU" in out and "recorded as MLflow run" in out, out
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
