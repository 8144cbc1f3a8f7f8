"""The service starters of deploy/: each server answers, keeps its data under the root, and says why it failed."""
from __future__ import annotations

import pytest

from deploy import StackError, start_s3
from deploy.process import spawn, wait_until


def test_postgres_has_the_three_databases(pg_server, stack_root):
    import psycopg

    with psycopg.connect(pg_server.db_url("postgres", driver=""), autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {"catalog", "mlflow", "prefect"} <= names
    assert (stack_root / "postgres" / "data" / "PG_VERSION").exists() and pg_server.alive()


def test_mlflow_artifacts_land_in_the_bucket(mlflow_server, s3_server, tmp_path):
    import mlflow

    (tmp_path / "a.txt").write_text("x" * 5000)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    run = client.create_run(client.create_experiment("stack-services"))
    client.log_artifact(run.info.run_id, str(tmp_path / "a.txt"))
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_server.bucket)["Contents"]]
    assert f"mlflow/{run.info.experiment_id}/{run.info.run_id}/artifacts/a.txt" in keys


def test_s3_restart_replays_recorded_writes(tmp_path, s3_server):
    first = start_s3(tmp_path, bucket="bkt-one")
    first.client().put_object(Bucket="bkt-one", Key="k/one", Body=b"\x00\x01" * 1000)
    first.kill()
    second = start_s3(tmp_path, bucket="bkt-one")
    try:
        c = second.client()
        assert c.get_object(Bucket="bkt-one", Key="k/one")["Body"].read() == b"\x00\x01" * 1000
    finally:
        second.stop()


def test_a_service_that_dies_names_its_log(tmp_path):
    import sys

    proc, log = spawn("broken", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], tmp_path)
    with pytest.raises(StackError, match=r"broken exited with status 3 before it was ready; see .*broken\.log"):
        wait_until("broken", lambda: False, log, timeout=10, proc=proc)
    assert "boom" in log.read_text()


def test_missing_moto_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KNNCLIP_MOTO_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(StackError, match="moto\\[server\\] is not installed in .*nowhere; run: .*pip install --target"):
        start_s3(tmp_path)


def test_postgres_with_a_password_refuses_clients_without_it(stack_root, pg_server, monkeypatch):
    import psycopg

    from deploy import start_postgres
    from knnclip_core.redact import redact_text

    monkeypatch.setenv("KNNCLIP_PG_PASSWORD", "s3cret-pw")
    pg = start_postgres(stack_root / "with-password", databases=("catalog",), durable=False)
    try:
        url = pg.db_url("catalog", driver="")
        assert ":s3cret-pw@" in url and "s3cret-pw" not in redact_text(url)
        with psycopg.connect(url, connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url.replace(":s3cret-pw@", ":wrong@"), connect_timeout=5)
    finally:
        pg.stop()


def test_postgres_never_trusts_and_a_trusting_folder_gets_its_password(stack_root, pg_server, monkeypatch):
    import psycopg

    from deploy import start_postgres
    from deploy.postgres import USER, _as_owner, _chown_to_owner, pg_bindir

    monkeypatch.delenv("KNNCLIP_PG_PASSWORD", raising=False)
    assert pg_server.password and "trust" not in (stack_root / "postgres" / "data" / "pg_hba.conf").read_text()
    with pytest.raises(psycopg.OperationalError, match="password"):  # no password set: one was generated
        psycopg.connect(host=pg_server.host, port=pg_server.port, user=USER, dbname="postgres", connect_timeout=5)

    old = stack_root / "trusting" / "postgres" / "data"  # a folder made by older code: trust on loopback
    old.mkdir(parents=True)
    _chown_to_owner(old)
    import subprocess

    subprocess.run(_as_owner([str(pg_bindir() / "initdb"), "-D", str(old), "-U", USER, "-A", "trust", "--no-sync"]),
                   check=True, capture_output=True)
    with pytest.raises(StackError, match="protected by a password: set KNNCLIP_PG_PASSWORD"):
        start_postgres(stack_root / "trusting", databases=("catalog",), durable=False)
    pg = start_postgres(stack_root / "trusting", databases=("catalog",), durable=False, password="given-pw")
    try:
        assert "trust" not in (old / "pg_hba.conf").read_text()
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=pg.host, port=pg.port, user=USER, dbname="catalog", connect_timeout=5)
        with psycopg.connect(pg.db_url("catalog", driver=""), connect_timeout=5) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pg.stop()
