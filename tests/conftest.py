"""Shared fixtures: an isolated workspace per test, and the real data when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# label-studio-converter installs a top-level `tests` package into site-packages; a regular package
# there would shadow this folder (no __init__.py), so `from tests.x import y` must find ours.
import sys
import types

_tests_pkg = types.ModuleType("tests")
_tests_pkg.__path__ = [str(Path(__file__).resolve().parent)]
sys.modules["tests"] = _tests_pkg

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REQUIRE_ENV = "KNNCLIP_REQUIRE_DATA"  # .ci/run sets it to 1: missing data or tools fail instead of skipping

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
    for var in ("KNNCLIP_CATALOG_URL", "KNNCLIP_MEMORY_URI", "KNNCLIP_LOCK_URL"):  # a stack shell must not leak in
        monkeypatch.delenv(var, raising=False)
    return load_settings()


@pytest.fixture
def workspace(settings):
    from knnclip_core.workspace import Workspace

    return Workspace.from_settings(settings).ensure()


def require_or_skip(reason: str) -> None:
    """Skip the test with `reason`, or fail it when KNNCLIP_REQUIRE_DATA=1 (CI must not skip)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 forbids skipping this test", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip the test with the reason (fail under KNNCLIP_REQUIRE_DATA=1)."""
    if not SHARED_DATA.is_dir():
        require_or_skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


def local_registry(tmp_path, monkeypatch, model_name: str):
    """A RegistryContext on a fresh workspace's own SQLite MLflow store, for `model_name`."""
    from knnclip_core.config import load_settings
    from registry.store import open_registry

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    home = tmp_path / "ws"
    monkeypatch.setenv("KNNCLIP_HOME", str(home))
    return open_registry(load_settings(home=str(home)), model_name=model_name)
