"""Issue 12, items 8-9: a kill -9 inside the MLflow store's schema creation, and two first
publishes at once, leave a working registry (real child processes, real SQLite store)."""
from __future__ import annotations

import pytest

from benchmarks.fault_scenarios import common

pytestmark = pytest.mark.reliability


def _list_ok(home):
    res = common.run(home, ["releases", "list", "--json"], timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    assert common.last_json(res.stdout) == []


@pytest.mark.parametrize("creator", ["knnclip", "mlflow-direct"])
def test_kill_during_schema_creation_leaves_a_working_registry(tmp_path, creator):
    """Killed after the 30th CREATE TABLE (inside the alembic migrations): the next command
    works. 'mlflow-direct' is the half-made file an older knnclip (MLflow creating the
    schema in place) leaves: it is moved aside and rebuilt."""
    home = tmp_path / "ws"
    home.mkdir()
    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    (home / "mlflow").mkdir()
    if creator == "knnclip":
        assert common.kill_in_schema_creation(home, 30)
    else:
        assert common.kill_in_schema_creation(home, 30, argv=[uri], code=common.MLFLOW_DIRECT)
        assert (home / "mlflow" / "mlflow.db").exists()  # the half-made store
    _list_ok(home)
    _list_ok(home)  # and it stays working
    assert not list((home / "mlflow").glob("mlflow.db.init-*"))


PUBLISH = ("import json; from registry.store import open_registry; from registry.publish import publish_snapshot; "
           "print(json.dumps(publish_snapshot(open_registry(), sys.argv[1])))")


def test_two_concurrent_first_publishes_both_succeed(tmp_path):
    """Two processes publish into a fresh store at once, schema creation slowed down so
    that they overlap: both exit 0, and the store holds versions 1 and 2."""
    from tests.test_registry import seeded_snapshot

    home = tmp_path / "ws"
    snaps = [seeded_snapshot(tmp_path / f"s{i}", {"road": 5, "sky": 4}, i) for i in range(2)]
    procs = [common.start(home, [str(s)], code=PUBLISH, hook=True, KC_TABLE_DELAY="0.03") for s in snaps]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    assert sorted(common.last_json(out)["version"] for out, _ in outs) == [1, 2]
    res = common.run(home, ["releases", "list", "--json"], timeout=180)
    assert [r["version"] for r in common.last_json(res.stdout)] == [1, 2]
