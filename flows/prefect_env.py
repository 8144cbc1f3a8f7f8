"""Quiet, offline Prefect settings rooted in the workspace. Call `configure` before
importing prefect: values the user already set in the environment win."""
from __future__ import annotations

import os

from knnclip_core.workspace import Workspace


def configure(ws: Workspace) -> None:
    """Point Prefect's home and result storage into the workspace and silence telemetry."""
    defaults = {
        "PREFECT_HOME": str(ws.prefect_dir),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(ws.prefect_dir / "results"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "true",
        "PREFECT_LOGGING_LEVEL": "WARNING",  # the console's; run logs reach the API at INFO (flows.runlog)
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    ws.prefect_dir.mkdir(parents=True, exist_ok=True)
