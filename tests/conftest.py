"""Shared fixtures: an isolated workspace per test, and the real data when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Quiet and offline for every library the tests touch.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings whose workspace is a fresh folder under tmp_path."""
    from knnclip_core.config import load_settings

    monkeypatch.setenv("KNNCLIP_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    monkeypatch.delenv("KNNCLIP_CATALOG_URL", raising=False)
    return load_settings()


@pytest.fixture
def workspace(settings):
    from knnclip_core.workspace import Workspace

    return Workspace.from_settings(settings).ensure()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
