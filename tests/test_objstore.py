"""Where the memory and the locks live: KNNCLIP_MEMORY_URI (a folder or s3://), the object
store's options from the environment only, KNNCLIP_LOCK_URL or a PostgreSQL catalog."""
from __future__ import annotations

import pytest

from knnclip_core.objstore import storage_options
from knnclip_core.pg_lock import is_postgres_url, lock_key, sqlalchemy_url


def _ws(settings, **over):
    from knnclip_core.workspace import Workspace

    return Workspace.from_settings(settings.model_copy(update=over))


def test_memory_uri_defaults_to_the_workspace_folder_and_takes_s3(settings, monkeypatch):
    ws = _ws(settings)
    assert ws.memory_uri == str(ws.home / "memory") and ws.memory_is_local and ws.shared_lock_url is None
    ws = _ws(settings, memory_uri="s3://bucket/team/memory/")
    assert ws.memory_uri == "s3://bucket/team/memory" and not ws.memory_is_local
    ws.ensure()
    assert not ws.memory_dir.exists()  # nothing local for a memory in the object store
    monkeypatch.setenv("KNNCLIP_MEMORY_URI", "s3://b/p")
    from knnclip_core.config import load_settings

    assert load_settings().memory_uri == "s3://b/p"


def test_storage_options_come_from_the_environment(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("KNNCLIP_S3_ENDPOINT", "http://127.0.0.1:9000")
    assert storage_options("/some/folder") is None
    assert storage_options("s3://b/p") == {"aws_access_key_id": "key", "aws_secret_access_key": "secret",
                                           "region": "us-east-1", "endpoint": "http://127.0.0.1:9000",
                                           "allow_http": "true"}
    monkeypatch.delenv("KNNCLIP_S3_ENDPOINT")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example.com")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    opts = storage_options("s3://b/p")
    assert opts["endpoint"] == "https://s3.example.com" and opts["region"] == "eu-west-1" and "allow_http" not in opts
    with pytest.raises(ValueError, match="unsupported memory location scheme 'ftp'"):
        storage_options("ftp://host/x")


def test_lock_url_and_postgres_catalog_share_the_locks(settings):
    pg = "postgresql+psycopg://u@db:5432/catalog"
    assert _ws(settings, catalog_url=pg).shared_lock_url == pg
    assert _ws(settings, lock_url="postgresql://u@locks/db").shared_lock_url == "postgresql://u@locks/db"
    with pytest.raises(ValueError, match="KNNCLIP_LOCK_URL must be a PostgreSQL URL"):
        _ws(settings, lock_url="mysql://u@h/db")
    assert is_postgres_url("postgres://h/db") and not is_postgres_url("sqlite:///x.db")
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"
    assert sqlalchemy_url("postgresql://u@h/db").startswith("postgresql")
    assert lock_key("memory.lock") == lock_key("memory.lock") != lock_key("aliases-m.lock")
    assert -2 ** 63 <= lock_key("memory.lock") < 2 ** 63
