"""`knnclip run` whose publish stage fails on the registry: one sentence, exit 2, no
traceback on the console (Prefect's engines log failures with theirs), no credential; and
the console formatter keeps tracebacks of real bugs."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knnclip_core.errors import KnnclipError
from knnclip_core.net import free_port
from knnclip_core.sample_data import write_sample_dataset
from knnclip_core.sentence_log import SentenceFormatter

pytestmark = pytest.mark.reliability
SENTINEL = "Sntl7pw"
REPO = Path(__file__).resolve().parents[2]


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "Encountered exception", None,
                                 sys.exc_info())


def test_sentence_errors_print_without_traceback_and_bugs_with_it():
    fmt = SentenceFormatter()
    record = _record(KnnclipError("the model registry refused the request: down"))
    assert fmt.format(record) == "ERROR prefect.flow_runs: Encountered exception"
    assert record.exc_info is not None  # the record itself is left for the other handlers (Prefect's API log)
    assert "Traceback (most recent call last)" in fmt.format(_record(ValueError("a bug")))
    full = _record(OSError(28, "No space left on device", "/ws/catalog.db"))
    assert "Traceback" not in fmt.format(full)  # a full disk ends as one sentence too


@pytest.mark.slow
def test_run_with_an_unreachable_registry_is_one_sentence(tmp_path):
    data = write_sample_dataset(tmp_path / "data", images=3, classes=2, seed=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KNNCLIP_", "PREFECT_", "MLFLOW_"))}
    env.update(KNNCLIP_HOME=str(tmp_path / "ws"), PYTHONPATH=str(REPO),
               MLFLOW_TRACKING_URI=f"http://u:{SENTINEL}@127.0.0.1:{free_port()}/",
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="3")
    proc = subprocess.run([sys.executable, "-m", "knnclip_core.cli.main", "run", str(data)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    err = proc.stderr
    assert proc.returncode == 2, err[-3000:]
    assert "Traceback" not in err and SENTINEL not in err + proc.stdout, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("knnclip run: the model registry refused the request") and "u:***@127.0.0.1" in last
