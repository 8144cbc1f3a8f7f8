"""Issue 12, item 13 (operations): `releases show`/`diff` verify before printing; runs a
kill -9 left `running` (ingest, curation, MLflow publish run) are marked failed by the next
run; bad alias names and `publish` on an empty workspace give one sentence and exit 2."""
from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from benchmarks.fault_scenarios import common
from tests.test_registry import seeded_snapshot

pytestmark = pytest.mark.reliability


def knnclip(home, *argv, capsys=None):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    from knnclip_core.cli.main import main

    rc = main(["--home", str(home), *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def two_releases(tmp_path, monkeypatch):
    from knnclip_core.config import load_settings
    from registry.publish import publish_snapshot
    from registry.store import open_registry

    home = tmp_path / "ws"
    monkeypatch.setenv("KNNCLIP_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ctx = open_registry(load_settings(home=str(home)))
    for i, classes in enumerate(({"road": 6, "sky": 4}, {"road": 6, "sky": 4, "tree": 3})):
        publish_snapshot(ctx, seeded_snapshot(tmp_path / f"s{i}", classes, i))
    return home


def _artifact(home, version, name):
    """The file `name` of release `version` in the MLflow artifact store."""
    from pathlib import Path
    from urllib.parse import urlparse

    from knnclip_core.config import load_settings
    from registry.store import open_registry, snapshot_uri

    source = snapshot_uri(open_registry(load_settings(home=str(home))).model_version(version))
    return Path(urlparse(source).path) / name


def test_show_and_diff_verify_before_printing(two_releases, capsys, tmp_path):
    """A changed manifest, a changed data file, a missing file and an extra file, each in its
    own release: `show` and `diff` refuse it (exit 2, one sentence), the good ones still show."""
    from knnclip_core.config import load_settings
    from registry.publish import publish_snapshot
    from registry.store import open_registry

    home = two_releases
    ctx = open_registry(load_settings(home=str(home)))
    for version, tamper in enumerate(("manifest", "labels", "missing", "extra"), start=3):
        assert publish_snapshot(ctx, seeded_snapshot(tmp_path / tamper, {"road": 4, "sky": 3}, version))["version"] == version
        assert knnclip(home, "releases", "show", str(version), "--json", capsys=capsys)[0] == 0
        shutil.rmtree(home / "cache" / "releases", ignore_errors=True)  # the store's copy is what is read
        if tamper == "manifest":
            p = _artifact(home, version, "manifest.json")
            m = json.loads(p.read_text())
            m["vectors"] += 1000
            p.write_text(json.dumps(m))
        elif tamper == "labels":
            p = _artifact(home, version, "vocabulary.json")
            p.write_text(p.read_text().replace("road", "r0ad"))
        elif tamper == "missing":
            _artifact(home, version, "labels.parquet").unlink()
        else:
            (_artifact(home, version, "manifest.json").parent / "evil.py").write_text("print('hi')")
        for argv in (("releases", "show", str(version)), ("releases", "diff", "1", str(version))):
            rc, out, err = knnclip(home, *argv, capsys=capsys)
            assert rc == 2, (tamper, argv, out)
            assert out == "", out  # (in-process, stderr may also hold other tests' logging noise)
            assert err.strip().splitlines()[-1].startswith("knnclip releases: "), err
    assert knnclip(home, "releases", "diff", "1", "2", capsys=capsys)[0] == 0  # the untouched ones still do


@pytest.mark.parametrize("argv", [("publish", "--alias", "bad/name"), ("publish",)])
def test_clear_sentence_and_exit_2(tmp_path, capsys, argv, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    rc, out, err = knnclip(tmp_path / "ws", *argv, capsys=capsys)
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_bad_alias_names_in_promote(two_releases, capsys):
    for alias in ("no spaces", "latest", "a/b", "v7"):
        rc, out, err = knnclip(two_releases, "releases", "promote", "2", "--alias", alias, "--force", capsys=capsys)
        assert rc == 2 and err.strip().splitlines()[-1].startswith("knnclip releases: "), (alias, err)


HOLD_RUNS = """
import time
from knnclip_core.catalog import CurationRun, Dataset, IngestBatch, session_scope
url = sys.argv[1]
with session_scope(url) as s:
    s.add(Dataset(id=1, name="d"))
with session_scope(url) as s:
    s.add(IngestBatch(id=sys.argv[2], dataset_id=1, source="x", format="semantic-png"))
    s.add(CurationRun(embedder_id="e", table_name="t"))
print("ready", flush=True)
time.sleep(600)
"""


def _statuses(db):
    con = sqlite3.connect(db)
    try:
        return (con.execute("SELECT id, status FROM ingestbatch").fetchall(),
                con.execute("SELECT status FROM curationrun").fetchall())
    finally:
        con.close()


def test_killed_ingest_and_curation_are_marked_failed_on_the_next_run(tmp_path):
    home = tmp_path / "ws"
    home.mkdir()
    db = home / "catalog.db"
    p = common.start(home, [f"sqlite:///{db}", "b-killed"], code=HOLD_RUNS)
    assert p.stdout.readline().strip() == "ready"
    common.kill(p)
    live = common.start(home, [f"sqlite:///{tmp_path / 'live.db'}", "b-live"], code=HOLD_RUNS)
    try:
        assert live.stdout.readline().strip() == "ready"
        assert _statuses(db) == ([("b-killed", "running")], [("running",)])
        res = common.run(home, ["memory", "history", "--json"], timeout=120)  # any next run
        assert res.returncode == 0, res.stderr[-2000:]
        assert _statuses(db) == ([("b-killed", "failed")], [("failed",)])
        con = sqlite3.connect(db)
        assert "interrupted" in con.execute("SELECT error FROM ingestbatch").fetchone()[0]
        con.close()
        # a run whose process is alive is left alone
        res = common.run(home, ["memory", "history", "--json"], timeout=120,
                         KNNCLIP_CATALOG_URL=f"sqlite:///{tmp_path / 'live.db'}")
        assert _statuses(tmp_path / "live.db") == ([("b-live", "running")], [("running",)])
    finally:
        common.kill(live)


PAUSED_PUBLISH = """
import os, time
from mlflow import MlflowClient
def paused(*a, **k):
    print("ready", flush=True)
    time.sleep(600)
MlflowClient.log_artifacts = paused
from registry.store import open_registry
from registry.publish import publish_snapshot
publish_snapshot(open_registry(), sys.argv[1])
"""


def test_killed_publish_run_is_not_left_running(tmp_path, monkeypatch):
    from knnclip_core.config import load_settings
    from registry.publish import publish_snapshot
    from registry.store import EXPERIMENT_NAME, open_registry

    home = tmp_path / "ws"
    p = common.start(home, [str(seeded_snapshot(tmp_path / "a", {"road": 5, "sky": 5}, 1))], code=PAUSED_PUBLISH)
    assert p.stdout.readline().strip() == "ready", p.stderr.read()[-2000:]
    common.kill(p)
    monkeypatch.setenv("KNNCLIP_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    ctx = open_registry(load_settings(home=str(home)))
    exp = ctx.client.get_experiment_by_name(EXPERIMENT_NAME).experiment_id
    (killed,) = ctx.client.search_runs([exp])
    assert killed.info.status == "RUNNING"
    assert publish_snapshot(ctx, seeded_snapshot(tmp_path / "b", {"road": 5, "sky": 5}, 2))["version"] == 1
    statuses = {r.info.run_id: r.info.status for r in ctx.client.search_runs([exp])}
    assert statuses.pop(killed.info.run_id) == "FAILED" and list(statuses.values()) == ["FINISHED"]
