"""Issue 21: a credential in a URL setting is never shown: not on stderr (the real CLI), not
in the dashboard's answers or log, not in log records of any logger, not in Prefect stage
lines. The oracle is the sentinel password itself: it must occur nowhere."""
from __future__ import annotations

import logging

import pytest

from knnclip_core.net import free_port
from knnclip_core.redact import install_log_redaction, redact_text, redact_url

pytestmark = pytest.mark.reliability
SENTINEL = "Sntl7pw"


@pytest.mark.parametrize("url,shown", [
    ("http://u:Sntl7pw@host:5000/x", "http://u:***@host:5000/x"),
    ("postgresql+psycopg://knn:Sn:tl7pw@db:5432/m", "postgresql+psycopg://knn:***@db:5432/m"),
    ("https://u:Sntl@7pw@h/p", "https://u:***@h/p"),  # an unencoded @ in the password
    ("http://:Sntl7pw@h", "http://:***@h"),
    ("postgresql://db/m?user=a&password=Sntl7pw&sslmode=require", "postgresql://db/m?user=a&password=***&sslmode=require"),
    ("sqlite:////ws/mlflow/mlflow.db", "sqlite:////ws/mlflow/mlflow.db"),
    ("http://user@host/a@b", "http://user@host/a@b"),
    ("s3://bucket/prefix", "s3://bucket/prefix"),
])
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_hides_env_secrets_wherever_they_appear(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://u:{SENTINEL}%21@h")
    monkeypatch.setenv("KNNCLIP_WORKER_TOKEN", "tok-abcdef")
    said = redact_text(f"password {SENTINEL}! and {SENTINEL}%21, token tok-abcdef")
    assert SENTINEL not in said and "tok-abcdef" not in said


def test_every_log_record_is_redacted(caplog):
    install_log_redaction()
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.INFO):
        log.info("connecting to %s", f"http://u:{SENTINEL}@h:1/api")
        try:
            raise ConnectionError(f"API request to http://u:{SENTINEL}@h:1/api failed")
        except ConnectionError:
            log.exception("failed")
    text = "\n".join(caplog.messages) + caplog.text
    assert "http://u:***@h:1/api" in text and SENTINEL not in text


@pytest.fixture
def sentinel_registry(tmp_path, monkeypatch):
    """An MLflow tracking URI with the sentinel password, on a closed port (fails fast)."""
    monkeypatch.setenv("KNNCLIP_HOME", str(tmp_path / "ws"))
    monkeypatch.delenv("KNNCLIP_CONFIG", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://u:{SENTINEL}@127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")


def test_cli_error_shows_no_password(sentinel_registry, capsys, caplog):
    from knnclip_core.cli.main import main

    with caplog.at_level(logging.DEBUG):
        rc = main(["-v", "releases", "list"])
    out = capsys.readouterr()
    assert rc == 2 and "model registry refused" in out.err and "u:***@127.0.0.1" in out.err, out.err
    assert SENTINEL not in out.err + out.out + caplog.text


def test_dashboard_answers_and_log_show_no_password(sentinel_registry, caplog):
    from fastapi.testclient import TestClient

    from dashboards.app import create_app
    from knnclip_core.config import load_settings

    with caplog.at_level(logging.DEBUG), TestClient(create_app(load_settings()), raise_server_exceptions=False) as client:
        bodies = [client.get(p).text for p in ("/releases", "/api/releases", "/releases/diff?a=1&b=2",
                                               "/api/releases/diff?a=1&b=2", "/try")]
    assert "u:***@127.0.0.1" in bodies[1], bodies[1][:500]
    for body in bodies:
        assert SENTINEL not in body
    assert SENTINEL not in caplog.text


def test_prefect_stage_lines_show_no_password(capsys, monkeypatch):
    from flows.reports import mlflow_links
    from flows.runlog import stage

    stage(f"publish: released to http://u:{SENTINEL}@mlflow:5000")
    links = "\n".join(mlflow_links({"tracking_uri": f"https://u:{SENTINEL}@m", "run_id": "r", "version": 1,
                                    "model_name": "m", "uri": "models:/m/1"}))
    assert SENTINEL not in capsys.readouterr().err + links


def test_worker_reload_error_shows_no_password():
    from knnclip_core.serving.watcher import ReleaseWatcher

    def failing(known):
        raise ConnectionError(f"API request to http://u:{SENTINEL}@h/api failed")

    w = ReleaseWatcher(failing, 60)
    w.poll_once()
    assert w.last_error and SENTINEL not in w.last_error and "u:***@h" in w.last_error
