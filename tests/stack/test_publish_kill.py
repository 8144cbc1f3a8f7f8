"""Killing the MLflow server, or the S3 server under it, in the middle of `knnclip publish` leaves no half
release that a worker would load: the publish fails, the alias stays on the last whole release, every
registered version loads and verifies; after a restart the rerun publishes a release the worker loads."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from knnclip_core.sample_data import write_sample_dataset

from deploy import start_mlflow, start_s3
from deploy.process import signal_group

pytestmark = pytest.mark.slow
MODEL = "knnclip-kill"


@pytest.fixture(scope="module")
def kill_stores(stack_root, pg_server, s3_server):
    """An S3 server and an MLflow server of this module's own (database mlflow_kill), which the tests kill and
    restart on the same ports; yields a dict holding the current ones."""
    root = stack_root / "kill"
    s3 = start_s3(root)
    ml = start_mlflow(root, pg_server, s3, database="mlflow_kill", name="mlflow-kill")
    stores = {"root": root, "pg": pg_server, "s3": s3, "mlflow": ml}
    with pytest.MonkeyPatch.context() as mp:  # this module's in-process MLflow clients use its server's password
        for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            mp.setenv(key, ml.env[key])
        yield stores
    stores["mlflow"].stop()
    stores["s3"].stop()


def _env(stores, home) -> dict:
    return {**os.environ, **stores["s3"].env, **stores["mlflow"].env, "KNNCLIP_HOME": str(home),
            "KNNCLIP_PUBLISH__MODEL_NAME": MODEL, "KNNCLIP_EMBED__BACKBONE": "classic-v2",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}


def _knnclip(env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "knnclip_core.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _add_batch(env, data) -> None:
    """ingest + embed + curate of `data`, in one process (three CLI commands)."""
    code = ("import sys; from knnclip_core.cli.main import main; "
            "sys.exit(0 if all(main(a) == 0 for a in (['ingest', sys.argv[1]], ['embed'], ['curate'])) else 1)")
    out = subprocess.run([sys.executable, "-c", code, str(data)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def _staging(stores) -> int:
    from mlflow import MlflowClient

    return int(MlflowClient(tracking_uri=stores["mlflow"].url).get_model_version_by_alias(MODEL, "staging").version)


def _runs_started(pg, database: str) -> int:
    import psycopg

    with psycopg.connect(pg.db_url(database, driver=""), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def _check_versions_load(stores, env, newer_than: int) -> dict:
    """Load every registered version above `newer_than` and the staging alias as the worker does (download,
    manifest checksums, index); returns {'versions': all versions, 'staging': its version}."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stores["mlflow"].url)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    code = ("import sys; from serving.worker_source import load_segmenter; "
            "[load_segmenter(r) for r in sys.argv[1:]]; print('loaded')")
    refs = [f"models:/{MODEL}/{v}" for v in versions if v > newer_than] + [f"models:/{MODEL}@staging"]
    out = subprocess.run([sys.executable, "-c", code, *refs], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "loaded" in out.stdout, out.stderr[-3000:]
    return {"versions": versions, "staging": int(client.get_model_version_by_alias(MODEL, "staging").version)}


def _kill_mid_publish(stores, env, victim: str) -> subprocess.CompletedProcess:
    """Start `knnclip publish`; as soon as its MLflow run exists, freeze `victim` (mlflow | s3) and kill it."""
    before = _runs_started(stores["pg"], "mlflow_kill")
    proc = subprocess.Popen([sys.executable, "-m", "knnclip_core.cli.main", "publish"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _runs_started(stores["pg"], "mlflow_kill") == before:
        assert proc.poll() is None, f"publish ended before it started a run: {proc.communicate()}"
        assert time.monotonic() < deadline, "publish started no run within 120 s"
        time.sleep(0.01)
    svc = stores[victim]
    signal_group(svc.pid, signal.SIGSTOP)  # mid-publish: the run exists, the rest has not reached the store
    time.sleep(0.5)
    svc.kill()
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _restart(stores, victim: str) -> None:
    if victim == "s3":
        stores["s3"] = start_s3(stores["root"], port=stores["s3"].port)
    else:
        old = int(stores["mlflow"].url.rsplit(":", 1)[1])
        stores["mlflow"] = start_mlflow(stores["root"], stores["pg"], stores["s3"], port=old, database="mlflow_kill",
                                        name="mlflow-kill", password=stores["mlflow"].env["MLFLOW_TRACKING_PASSWORD"])


@pytest.fixture(scope="module")
def publisher(kill_stores, stack_root):
    """A machine's folder with a curated memory and its first release published (staging)."""
    home = stack_root / "machines" / "publisher"
    env = _env(kill_stores, home)
    _add_batch(env, write_sample_dataset(home.parent / "kill-data-0", images=6, classes=3, seed=30))
    first = _knnclip(env, "publish", "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    return home


@pytest.mark.parametrize("victim,seed", [("mlflow", 31), ("s3", 32)])
def test_kill_mid_publish_leaves_no_half_release(kill_stores, publisher, victim, seed):
    env = _env(kill_stores, publisher)
    before = _staging(kill_stores)
    _add_batch(env, write_sample_dataset(publisher.parent / f"kill-data-{seed}", images=4, classes=4, seed=seed))
    killed = _kill_mid_publish(kill_stores, env, victim)
    assert killed.returncode != 0, f"publish finished before the {victim} server died: {killed.stdout}"

    _restart(kill_stores, victim)
    env = _env(kill_stores, publisher)
    assert _staging(kill_stores) == before, "the alias moved to a release of the killed publish"
    rerun = _knnclip(env, "publish", "--json")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    final = _check_versions_load(kill_stores, env, before)  # the killed publish left no version that fails to load
    assert final["staging"] == max(final["versions"]) > before
